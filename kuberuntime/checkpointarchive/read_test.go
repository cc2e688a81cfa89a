package checkpointarchive

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeTree writes a container checkpoint tree into dir: its dumps (config.dump of cfg, with an
// image) and a CRIU inventory.
func writeTree(t *testing.T, dir string, cfg *runtime.ContainerConfig) {
	t.Helper()
	raw, err := protojson.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ImagesDir), 0o700); err != nil {
		t.Fatal(err)
	}
	c := Config{ID: "old", Name: cfg.GetMetadata().GetName(), ImageID: "sha256:img", RootfsImageName: "busybox:1", ContainerConfig: raw}
	if err := WriteDumps(dir, c, map[string]string{"ociVersion": "1.2.0"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ImagesDir, "inventory.img"), []byte("inv"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOpenAndInstall: a checkpoint written as a tree, and as its archive, opens to the same
// config and installs its CRIU images into a new directory.
func TestOpenAndInstall(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "counter"}, WorkingDir: "/w"})
	archive := filepath.Join(t.TempDir(), "c.tar")
	if _, err := Write(src, archive); err != nil {
		t.Fatal(err)
	}
	if got := tarEntries(t, archive)[SpecDump]; got == "" {
		t.Errorf("archive has no %s", SpecDump)
	}
	if !IsArchive(archive) || IsArchive(src) || IsArchive("busybox:1") {
		t.Fatal("IsArchive")
	}
	for _, p := range []string{archive, src} {
		cs, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if cs.Path != p || cs.Archive != (p == archive) || cs.Config.ImageID != "sha256:img" || cs.Config.Name != "counter" ||
			cs.ContainerConfig.GetWorkingDir() != "/w" {
			t.Fatalf("%s: %+v", p, cs)
		}
		dst := filepath.Join(t.TempDir(), "restore")
		if err := cs.Install(context.Background(), dst, 0); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dst, ImagesDir, "inventory.img")); err != nil || string(b) != "inv" {
			t.Fatalf("%s: installed inventory %q %v", p, b, err)
		}
		// The destination is new: an install never merges into what is there.
		if err := cs.Install(context.Background(), dst, 0); err == nil {
			t.Errorf("%s: installed over an existing directory", p)
		}
	}
}

// TestPodDump: pod.dump is read back as written, and a container it places outside the pod
// checkpoint, or a pod.dump that is missing or does not decode, is InvalidArgument.
func TestPodDump(t *testing.T) {
	dir := t.TempDir()
	pod := PodConfig{SandboxID: "sb", RuntimeHandler: "runc", Containers: map[string]string{"a": "a", "evil": "../elsewhere"}}
	if err := WritePodDump(dir, pod); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPodDump(dir)
	if err != nil || got.SandboxID != "sb" || got.RuntimeHandler != "runc" || len(got.Containers) != 2 {
		t.Fatalf("pod.dump %+v %v", got, err)
	}
	if d, err := got.ContainerDir(dir, "a"); err != nil || d != filepath.Join(dir, "a") {
		t.Errorf("container a: %q %v", d, err)
	}
	if _, err := got.ContainerDir(dir, "evil"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("container outside the checkpoint: %v", err)
	}
	if _, err := ReadPodDump(t.TempDir()); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no pod.dump: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, PodDump), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPodDump(dir); !errdefs.IsInvalidArgument(err) {
		t.Errorf("pod.dump that does not decode: %v", err)
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
		if err := Extract(context.Background(), p, dst, 0); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A checkpoint without CRIU images cannot be installed.
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, ConfigDump), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(src); !errdefs.IsInvalidArgument(err) {
		t.Errorf("config without image: %v", err)
	}
	if err := (&Source{Path: src}).Install(context.Background(), filepath.Join(t.TempDir(), "restore"), 0); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no CRIU images: %v", err)
	}
}
