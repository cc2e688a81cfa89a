package standalone

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
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
	fake := legacytest.NewFakeRuntime()
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

// TestEmptyDirFSGroup: with an fsGroup, an emptyDir is group-owned by it with setgid, its files
// group read-write and its dirs setgid (the kubelet's SetVolumeOwnership), without following the
// links a container planted in it; a changed fsGroup is applied again; OnRootMismatch walks only
// when the volume's root does not match.
func TestEmptyDirFSGroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	root := t.TempDir()
	d := filepath.Join(root, "u1", "volumes", "data")
	outside := filepath.Join(root, "host-file")
	os.WriteFile(outside, []byte("x"), 0o600)
	stat := func(p string) (os.FileMode, uint32) {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return os.FileMode(st.Mode & 0o7777), st.Gid
	}
	gid := func(g int64) *int64 { return &g }

	owned := map[string]int64{}
	makeEmptyDirs([]string{d}, gid(1234), "", owned)
	if mode, g := stat(d); mode != 0o2777 || g != 1234 {
		t.Fatalf("new emptyDir: mode %04o gid %d, want 2777 and 1234", mode, g)
	}
	// What a container made in it, a link to a host file among it.
	os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o600)
	os.Chown(filepath.Join(d, "f"), 0, 0)
	os.Mkdir(filepath.Join(d, "sub"), 0o700)
	os.Chown(filepath.Join(d, "sub"), 0, 0)
	os.Symlink(outside, filepath.Join(d, "sub", "link"))

	makeEmptyDirs([]string{d}, gid(1234), "", owned) // applied once per fsGroup (a sync each second)
	if _, g := stat(filepath.Join(d, "f")); g != 0 {
		t.Errorf("f: gid %d: walked again for the same fsGroup", g)
	}
	makeEmptyDirs([]string{d}, gid(4321), "", owned) // the manifest's fsGroup changed
	for p, want := range map[string]os.FileMode{d: 0o2777, filepath.Join(d, "f"): 0o660, filepath.Join(d, "sub"): 0o2770} {
		if mode, g := stat(p); mode != want || g != 4321 {
			t.Errorf("%s: mode %04o gid %d, want %04o and 4321", p, mode, g, want)
		}
	}
	if _, g := stat(filepath.Join(d, "sub", "link")); g != 4321 {
		t.Errorf("link: gid %d, want 4321 (the link itself)", g)
	}
	if mode, g := stat(outside); mode != 0o600 || g != 0 {
		t.Errorf("the host file behind the link: mode %04o gid %d: followed", mode, g)
	}

	// OnRootMismatch: a new worker (owned empty) leaves a matching volume alone.
	os.Chown(filepath.Join(d, "f"), 0, 0)
	makeEmptyDirs([]string{d}, gid(4321), corev1.FSGroupChangeOnRootMismatch, map[string]int64{})
	if _, g := stat(filepath.Join(d, "f")); g != 0 {
		t.Errorf("OnRootMismatch walked a matching volume")
	}
	makeEmptyDirs([]string{d}, gid(4321), corev1.FSGroupChangeAlways, map[string]int64{})
	if _, g := stat(filepath.Join(d, "f")); g != 4321 {
		t.Errorf("Always: f has gid %d", g)
	}

	// No fsGroup: 0777, root's group, as before.
	plain := filepath.Join(root, "u2", "volumes", "data")
	makeEmptyDirs([]string{plain}, nil, "", map[string]int64{})
	if mode, g := stat(plain); mode != 0o777 || g != 0 {
		t.Errorf("emptyDir without fsGroup: mode %04o gid %d", mode, g)
	}
}
