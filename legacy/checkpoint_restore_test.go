package legacy

import (
	"archive/tar"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeCheckpointDir writes a container checkpoint tree (config.dump and a CRIU inventory) into dir.
func writeCheckpointDir(t *testing.T, dir string, cfg *runtime.ContainerConfig) {
	t.Helper()
	raw, err := protojson.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(checkpointConfigFile{ID: "old", Name: cfg.GetMetadata().GetName(), ImageID: "sha256:img",
		RootfsImageName: "busybox:1", ContainerConfig: raw})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, checkpointImagesDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{checkpointConfig: b, checkpointImagesDir + "/inventory.img": []byte("inv")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRestoreFromArchive(t *testing.T) {
	old := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "counter", Attempt: 3},
		Image:    &runtime.ImageSpec{Image: "busybox:1"},
		Command:  []string{"sh", "-c", "loop"}, WorkingDir: "/w",
		Envs:    []*runtime.KeyValue{{Key: "A", Value: []byte("1")}},
		Labels:  map[string]string{"old": "1"},
		LogPath: "old.log",
		Mounts:  []*runtime.Mount{{ContainerPath: "/old", HostPath: "/tmp"}},
	}
	src := t.TempDir()
	writeCheckpointDir(t, src, old)
	archive := filepath.Join(t.TempDir(), "c.tar")
	if _, err := writeTarArchive(src, archive); err != nil {
		t.Fatal(err)
	}
	if !isCheckpointArchive(archive) || isCheckpointArchive(src) || isCheckpointArchive("busybox:1") {
		t.Fatal("isCheckpointArchive")
	}
	for _, p := range []string{archive, src} {
		cs, err := openCheckpoint(p)
		if err != nil {
			t.Fatal(err)
		}
		if cs.archive != (p == archive) || cs.config.ImageID != "sha256:img" || cs.ctrConfig.GetWorkingDir() != "/w" {
			t.Fatalf("%s: %+v", p, cs)
		}
		root := t.TempDir()
		if err := cs.install(root); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(root, restoreDir, checkpointImagesDir, "inventory.img")); err != nil || string(b) != "inv" {
			t.Fatalf("%s: installed inventory %q %v", p, b, err)
		}
		c := &podContainer{rootDir: root}
		if !isRestore(c) {
			t.Fatal("not a restore after install")
		}
	}

	// CreateContainer with the archive: the checkpointed config, the request's identity and logs.
	cs, _ := openCheckpoint(archive)
	req := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "again"}, Image: &runtime.ImageSpec{Image: archive},
		Labels: map[string]string{"new": "1"}, LogPath: "new.log"}
	got := archiveRestoreConfig(cs, req)
	if got.GetMetadata().GetName() != "again" || got.GetLabels()["new"] != "1" || got.GetLabels()["old"] != "" ||
		got.GetLogPath() != "new.log" || got.GetImage().GetImage() != "sha256:img" || got.GetImage().GetUserSpecifiedImage() != "busybox:1" ||
		strings.Join(got.GetCommand(), " ") != "sh -c loop" || len(got.GetMounts()) != 1 || got.GetMounts()[0].GetContainerPath() != "/old" {
		t.Fatalf("restore config %v", got)
	}
	req.Mounts = []*runtime.Mount{{ContainerPath: "/new", HostPath: "/tmp"}}
	if got := archiveRestoreConfig(cs, req); got.GetMounts()[0].GetContainerPath() != "/new" {
		t.Fatalf("request's mounts not used: %v", got.GetMounts())
	}

	// RestorePod's configs must describe the checkpointed process.
	r := &ContainerdRuntime{}
	ok := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "counter"}, Command: []string{"sh", "-c", "loop"},
		Labels: map[string]string{"new": "1"}}
	got, err := r.podRestoreConfig(context.Background(), cs, ok)
	if err != nil || got.GetLabels()["new"] != "1" || got.GetWorkingDir() != "/w" || len(got.GetEnvs()) != 1 || got.GetImage().GetImage() != "sha256:img" {
		t.Fatalf("pod restore config %v %v", got, err)
	}
	for name, cfg := range map[string]*runtime.ContainerConfig{
		"command":     {Metadata: ok.Metadata, Command: []string{"sleep"}},
		"args":        {Metadata: ok.Metadata, Args: []string{"x"}},
		"working_dir": {Metadata: ok.Metadata, WorkingDir: "/other"},
		"environment": {Metadata: ok.Metadata, Envs: []*runtime.KeyValue{{Key: "A", Value: []byte("2")}}},
		"pid namespace": {Metadata: ok.Metadata, Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}}},
		"user": {Metadata: ok.Metadata, Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			RunAsUser: &runtime.Int64Value{Value: 1000}}}},
	} {
		if _, err := r.podRestoreConfig(context.Background(), cs, cfg); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s mismatch: %v", name, err)
		}
	}
}

func TestExtractTarArchiveRejects(t *testing.T) {
	for name, hdr := range map[string]*tar.Header{
		"parent":  {Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o600},
		"symlink": {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
	} {
		p := filepath.Join(t.TempDir(), "a.tar")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		tw := tar.NewWriter(f)
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Close()
		f.Close()
		dst := t.TempDir()
		if err := extractTarArchive(p, filepath.Join(dst)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A checkpoint without CRIU images cannot be installed.
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, checkpointConfig), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openCheckpoint(src); !errdefs.IsInvalidArgument(err) {
		t.Errorf("config without image: %v", err)
	}
	if err := (&checkpointSource{path: src}).install(t.TempDir()); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no CRIU images: %v", err)
	}
}
