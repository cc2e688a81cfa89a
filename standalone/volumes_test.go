package standalone

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
)

// TestVolumeRootIsPrivate: the emptyDirs stay 0777 as the kubelet makes them (containers of any
// user write them), but no local user can reach them: the volume root is made 0700 (also one an
// older version left 0755) and the pod's dirs on the way are 0700.
func TestVolumeRootIsPrivate(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "volumes")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o755)
	fake := legacy.NewFakeRuntime()
	m, err := New(Options{Dir: filepath.Join(dir, "manifests"), VolumeRoot: root, Runtime: fake,
		ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "manifests"), 0o700)
	WriteFileAtomic(filepath.Join(dir, "manifests", "p.yaml"), []byte("metadata: {name: p, uid: u1}\n"+
		"spec: {containers: [{name: c, image: b, volumeMounts: [{name: data, mountPath: /d}]}], volumes: [{name: data, emptyDir: {}}]}\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the pod's container", func() bool { return running(fake, "c") != nil })
	for p, want := range map[string]os.FileMode{
		root:                                 0o700,
		filepath.Join(root, "u1"):            0o700,
		filepath.Join(root, "u1", "volumes"): 0o700,
		filepath.Join(root, "u1", "volumes", "data"): 0o777,
	} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %04o", p, st.Mode(), err, want)
		}
	}
}
