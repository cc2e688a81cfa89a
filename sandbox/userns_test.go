package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func usernsPodConfig(u *runtime.UserNamespace) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: u},
		}},
	}
}

func TestSpecUserNamespace(t *testing.T) {
	img := imagespec.ImageConfig{Entrypoint: []string{"/pause"}}
	uids := []*runtime.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	gids := []*runtime.IDMapping{{ContainerId: 0, HostId: 200000, Length: 65536}}

	// POD: the pause process joins the pinned namespace, and the spec carries its mappings.
	spec := genSpec(t, SpecInput{ID: "a", Image: img, NetNSPath: "/run/netns/a", UsernsPath: "/state/a/userns",
		Config: usernsPodConfig(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: uids, Gids: gids})})
	if p, ok := nsPath(spec, runtimespec.UserNamespace); !ok || p != "/state/a/userns" {
		t.Fatalf("user ns: %q %v", p, ok)
	}
	wantU := []runtimespec.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	wantG := []runtimespec.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	if fmt.Sprint(spec.Linux.UIDMappings) != fmt.Sprint(wantU) || fmt.Sprint(spec.Linux.GIDMappings) != fmt.Sprint(wantG) {
		t.Fatalf("mappings %v %v", spec.Linux.UIDMappings, spec.Linux.GIDMappings)
	}

	// NODE and no options: the host's user namespace.
	for _, u := range []*runtime.UserNamespace{nil, {Mode: runtime.NamespaceMode_NODE}} {
		spec := genSpec(t, SpecInput{ID: "b", Image: img, NetNSPath: "/run/netns/b", Config: usernsPodConfig(u)})
		if _, ok := nsPath(spec, runtimespec.UserNamespace); ok || len(spec.Linux.UIDMappings) != 0 {
			t.Fatalf("%v: user namespace in the spec: %+v", u, spec.Linux)
		}
	}

	// POD without a pinned namespace, CONTAINER, TARGET: errors.
	for _, in := range []SpecInput{
		{ID: "c", Image: img, Config: usernsPodConfig(&runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: uids, Gids: gids})},
		{ID: "c", Image: img, UsernsPath: "/x", Config: usernsPodConfig(&runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER})},
		{ID: "c", Image: img, UsernsPath: "/x", Config: usernsPodConfig(&runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET})},
	} {
		if _, err := SpecOpts(in); err == nil {
			t.Errorf("%v accepted", in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions)
		}
	}
}

// TestNetNSInUserns makes a network namespace in a new user namespace, pins that user namespace,
// and Cleanup takes the pin away.
func TestNetNSInUserns(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("namespaces need root")
	}
	dir := t.TempDir()
	m := runtimespec.LinuxIDMapping{ContainerID: 0, HostID: 400000, Size: 1000}
	p, err := NewNetNSInUserns(filepath.Join(dir, "netns"), "x", m, m)
	if err != nil {
		t.Fatal(err)
	}
	defer RemoveNetNS(p)
	if !NetNSPinned(p) {
		t.Fatal("netns not pinned")
	}
	files := PodFiles(filepath.Join(dir, "root"), filepath.Join(dir, "state"), false)
	if err := PinUserns(p, files.Userns); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(files.Userns, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Fatalf("userns not pinned: %v", err)
	}
	if err := files.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(files.Userns); !os.IsNotExist(err) {
		t.Fatalf("pin left behind: %v", err)
	}
	if err := files.Cleanup(); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
}
