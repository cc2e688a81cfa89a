package kuberuntime

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestValidateImageMount(t *testing.T) {
	img := &runtime.ImageSpec{Image: "sha256:abc"}
	for _, tc := range []struct {
		name string
		m    *runtime.Mount
		ok   bool
	}{
		{"read-only image", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true}, true},
		{"with sub path", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true, ImageSubPath: "etc/ssl"}, true},
		{"host path mount", &runtime.Mount{ContainerPath: "/v", HostPath: "/tmp"}, true},
		{"read-write image", &runtime.Mount{ContainerPath: "/v", Image: img}, false},
		{"image and host path", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true, HostPath: "/tmp"}, false},
		{"sub path climbing out", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true, ImageSubPath: "../etc"}, false},
		{"sub path climbing out later", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true, ImageSubPath: "etc/../../x"}, false},
		{"absolute sub path", &runtime.Mount{ContainerPath: "/v", Image: img, Readonly: true, ImageSubPath: "/etc"}, false},
		{"sub path without image", &runtime.Mount{ContainerPath: "/v", HostPath: "/tmp", ImageSubPath: "etc"}, false},
	} {
		err := legacy.ValidateImageMount(tc.m)
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: not InvalidArgument: %v", tc.name, err)
		}
	}
	// CreateContainer's validation applies it.
	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "c"}, Image: &runtime.ImageSpec{Image: "busybox"},
		Mounts: []*runtime.Mount{{ContainerPath: "/v", Image: img}},
	}
	if err := legacy.ValidateContainerConfig(cfg); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("read-write image volume: %v", err)
	}
}

func TestResolveImageSubPath(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/ssl", "usr/share"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"abs":    "/etc",        // absolute: the image's /etc
		"climb":  "../../../..", // climbs out: stops at the image's root
		"rel":    "usr/share",
		"absbad": "/nonexistent-in-image",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for sub, want := range map[string]string{
		"etc":        filepath.Join(root, "etc"),
		"etc/passwd": filepath.Join(root, "etc/passwd"),
		"abs/ssl":    filepath.Join(root, "etc/ssl"),
		"climb/etc":  filepath.Join(root, "etc"),
		"climb":      root,
		"rel":        filepath.Join(root, "usr/share"),
	} {
		got, err := resolveImageSubPath(root, sub)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", sub, got, err, want)
		}
	}
	for _, sub := range []string{"not-existing", "absbad", "../" + filepath.Base(root), "/etc", "etc/../../x"} {
		if got, err := resolveImageSubPath(root, sub); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: got %q, %v; want InvalidArgument", sub, got, err)
		}
	}
}

func TestStatusMountsImageRef(t *testing.T) {
	mounts := []*runtime.Mount{
		{ContainerPath: "/data", HostPath: "/srv"},
		{ContainerPath: "/iv", Readonly: true, Image: &runtime.ImageSpec{Image: "busybox", UserSpecifiedImage: "busybox"}},
	}
	if got := statusMounts(mounts, nil); len(got) != 2 || got[1].Image.ImageRef != "" {
		t.Fatalf("without records: %v", got)
	}
	got := statusMounts(mounts, []imageVolumeRecord{{ContainerPath: "/iv", ImageID: "sha256:1234"}})
	if got[0] != mounts[0] || got[1].GetImage().GetImageRef() != "sha256:1234" || got[1].GetImage().GetImage() != "busybox" {
		t.Fatalf("status mounts: %v", got)
	}
	if mounts[1].Image.ImageRef != "" {
		t.Fatal("the config's mount was changed")
	}
}
