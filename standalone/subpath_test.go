package standalone

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"github.com/moby/sys/mountinfo"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the subPath mounts are bind mounts")
	}
}

// mountsUnder returns the mount points under dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out
}

// TestPrepareSubPathStaysInVolume: whatever links the volume's writers put on the way, the
// subPath mounted at the target is inside the volume: an absolute link, a relative one climbing
// out, a link in the middle of the path; a missing subPath is made inside; a file subPath is
// mounted as a file; a second start replaces the first's mount (no stacking, and a link put in
// between is resolved again, inside).
func TestPrepareSubPathStaysInVolume(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() { removeVolumes(filepath.Join(dir, "pod")) })
	outside := filepath.Join(dir, "outside")
	os.Mkdir(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600)
	vol := filepath.Join(dir, "vol")
	os.Mkdir(vol, 0o777)
	os.Chmod(vol, 0o777)
	os.WriteFile(filepath.Join(vol, "in-volume"), []byte("v"), 0o644)
	os.WriteFile(filepath.Join(vol, "conf"), []byte("config"), 0o644)
	os.Symlink(outside, filepath.Join(vol, "abs-in"))
	os.MkdirAll(filepath.Join(vol, outside), 0o755)
	os.WriteFile(filepath.Join(vol, outside, "inside"), []byte("v"), 0o644)
	os.Symlink(outside+"-nonexistent", filepath.Join(vol, "dangling"))
	os.Symlink("../../../../../../..", filepath.Join(vol, "rel"))
	os.Symlink("/", filepath.Join(vol, "a"))
	target := func(name string) string { return filepath.Join(dir, "pod", subPathDir, "v", "c", name) }

	for _, tc := range []struct {
		sub, name string
		check     func(tgt string) string
	}{
		{"abs-in", "0", func(tgt string) string {
			// /<outside> resolved in the volume, where it exists too.
			if _, err := os.Stat(filepath.Join(tgt, "secret")); err == nil {
				return "shows the host's dir"
			}
			if _, err := os.Stat(filepath.Join(tgt, "inside")); err != nil {
				return "not the volume's <outside> dir: " + err.Error()
			}
			return ""
		}},
		{"rel", "1", func(tgt string) string {
			if _, err := os.Stat(filepath.Join(tgt, "in-volume")); err != nil {
				return "not the volume's root"
			}
			return ""
		}},
		{"a/outside-b", "2", func(tgt string) string {
			if _, err := os.Stat(filepath.Join(vol, "outside-b")); err != nil {
				return "not made inside the volume: " + err.Error()
			}
			return ""
		}},
		{"x/y", "3", func(tgt string) string {
			st, err := os.Stat(filepath.Join(vol, "x", "y"))
			if err != nil || !st.IsDir() || st.Mode().Perm() != 0o777 {
				return "missing subPath not made as a dir with the volume's mode"
			}
			return ""
		}},
		{"conf", "4", func(tgt string) string {
			if b, err := os.ReadFile(tgt); err != nil || string(b) != "config" {
				return "file subPath not mounted as the file"
			}
			return ""
		}},
	} {
		sp := SubPath{Volume: vol, Path: tc.sub, Target: target(tc.name)}
		if err := prepareSubPath(sp); err != nil {
			t.Errorf("%s: %v", tc.sub, err)
			continue
		}
		if why := tc.check(sp.Target); why != "" {
			t.Errorf("subPath %s: %s", tc.sub, why)
		}
		if _, err := os.Stat(filepath.Join(sp.Target, "bin")); err == nil {
			t.Errorf("subPath %s: the host's / mounted", tc.sub)
		}
	}

	// A link to what the volume does not have is refused (not made outside).
	if err := prepareSubPath(SubPath{Volume: vol, Path: "dangling", Target: target("6")}); err == nil {
		t.Error("a dangling link: mounted")
	}
	if _, err := os.Stat(outside + "-nonexistent"); !os.IsNotExist(err) {
		t.Errorf("the dangling link's host target: %v", err)
	}
	if got := mountsUnder(t, target("6")); len(got) != 0 {
		t.Errorf("a refused subPath is mounted: %v", got)
	}

	// A second start after the container swapped the dir for a link to /: the new mount is the
	// volume's root, and only one mount is at the target.
	os.MkdirAll(filepath.Join(vol, "sub"), 0o755)
	os.WriteFile(filepath.Join(vol, "sub", "mine"), []byte("x"), 0o644)
	sp := SubPath{Volume: vol, Path: "sub", Target: target("5")}
	if err := prepareSubPath(sp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sp.Target, "mine")); err != nil {
		t.Fatalf("first start: %v", err)
	}
	os.RemoveAll(filepath.Join(vol, "sub"))
	os.Symlink("/", filepath.Join(vol, "sub"))
	if err := prepareSubPath(sp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sp.Target, "in-volume")); err != nil {
		t.Errorf("second start: not the volume's root: %v", err)
	}
	if n := len(mountsUnder(t, sp.Target)); n != 1 {
		t.Errorf("%d mounts at the target, want 1", n)
	}
}

// TestRemoveVolumesUnmountsFirst: removing a pod's volume dir unmounts its subPath mounts first:
// the files of a mounted hostPath volume are not deleted through them, and nothing stays mounted.
func TestRemoveVolumesUnmountsFirst(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	host := filepath.Join(dir, "host")
	os.MkdirAll(filepath.Join(host, "sub"), 0o755)
	os.WriteFile(filepath.Join(host, "sub", "keep"), []byte("k"), 0o644)
	pod := filepath.Join(dir, "pod")
	for i := range 3 {
		if err := prepareSubPath(SubPath{Volume: host, Path: "sub", Target: filepath.Join(pod, subPathDir, "h", "c", string(rune('0'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(mountsUnder(t, pod)); n != 3 {
		t.Fatalf("%d mounts, want 3", n)
	}
	if err := removeVolumes(pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(host, "sub", "keep")); err != nil {
		t.Errorf("the hostPath volume's file: %v", err)
	}
	if _, err := os.Stat(pod); !os.IsNotExist(err) {
		t.Errorf("pod dir: %v", err)
	}
	if left := mountsUnder(t, dir); len(left) != 0 {
		t.Errorf("left mounted: %v", left)
	}
}

// TestManagerMountsSubPaths: on the FakeRuntime, a container's subPath mount names the manager's
// target, which holds the subPath (resolved inside the volume) when CreateContainer runs; a link
// planted at the subPath (by a local user before the start, or the container) resolves inside;
// removing the manifest unmounts and removes it all.
func TestManagerMountsSubPaths(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "volumes")
	t.Cleanup(func() { removeVolumes(root) })
	fake := legacytest.NewFakeRuntime()
	m, err := New(Options{Dir: filepath.Join(dir, "manifests"), VolumeRoot: root, Runtime: fake,
		ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	host := filepath.Join(dir, "host")
	os.MkdirAll(host, 0o755)
	os.Symlink("/etc", filepath.Join(host, "conf")) // resolves to <host>/etc
	os.MkdirAll(filepath.Join(host, "etc"), 0o755)
	os.WriteFile(filepath.Join(host, "etc", "app.conf"), []byte("a"), 0o644)
	os.MkdirAll(filepath.Join(dir, "manifests"), 0o700)
	WriteFileAtomic(filepath.Join(dir, "manifests", "p.yaml"), []byte(`metadata: {name: p, uid: u1}
spec:
  containers:
  - name: c
    image: b
    volumeMounts: [{name: data, mountPath: /d, subPath: sub}, {name: h, mountPath: /etc/app, subPath: conf, readOnly: true}]
  volumes: [{name: data, emptyDir: {}}, {name: h, hostPath: {path: `+host+`}}]
`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the pod's container", func() bool { return running(fake, "c") != nil })
	c := running(fake, "c")
	want := map[string]string{
		"/d":       filepath.Join(root, "u1", subPathDir, "data", "c", "0"),
		"/etc/app": filepath.Join(root, "u1", subPathDir, "h", "c", "1"),
	}
	for _, mnt := range c.Config.Mounts {
		if mnt.HostPath != want[mnt.ContainerPath] {
			t.Errorf("mount %s: host path %s, want %s", mnt.ContainerPath, mnt.HostPath, want[mnt.ContainerPath])
		}
	}
	if got := mountsUnder(t, root); len(got) != 2 {
		t.Errorf("mounts under the volume root: %v", got)
	}
	if _, err := os.Stat(filepath.Join(want["/etc/app"], "app.conf")); err != nil {
		t.Errorf("the linked subPath was not resolved inside the hostPath volume: %v", err)
	}
	if _, err := os.Stat(filepath.Join(want["/etc/app"], "passwd")); err == nil {
		t.Error("the host's /etc is mounted")
	}

	os.Remove(filepath.Join(dir, "manifests", "p.yaml"))
	waitFor(t, "the pod's volumes removed", func() bool { _, err := os.Stat(filepath.Join(root, "u1")); return os.IsNotExist(err) })
	if got := mountsUnder(t, root); len(got) != 0 {
		t.Errorf("left mounted: %v", got)
	}
	if _, err := os.Stat(host); err != nil {
		t.Errorf("the hostPath volume: %v", err)
	}
	if !strings.HasPrefix(want["/d"], root) {
		t.Fatal("unreachable")
	}
}

// TestManagerSubPathFailureIsConfigError: a subPath the manager's RuntimeHelper cannot mount (its
// hostPath volume is missing) fails the container's start as a CreateContainerConfigError with a
// "Failed" event, and no container is created.
func TestManagerSubPathFailureIsConfigError(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	fake := legacytest.NewFakeRuntime()
	m, err := New(Options{Dir: filepath.Join(dir, "manifests"), StateDir: state, VolumeRoot: filepath.Join(dir, "vol"), Runtime: fake,
		ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "manifests"), 0o700)
	WriteFileAtomic(filepath.Join(dir, "manifests", "p.yaml"), []byte(`metadata: {name: p}
spec:
  containers: [{name: c, image: b, volumeMounts: [{name: h, mountPath: /m, subPath: x}]}]
  volumes: [{name: h, hostPath: {path: `+filepath.Join(dir, "missing")+`}}]
`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var rec *PodRecord
	waitFor(t, "the sync error", func() bool {
		rec, err = ReadRecord(state, "default", "p")
		return err == nil && rec.SyncError != ""
	})
	if !strings.Contains(rec.SyncError, "CreateContainerConfigError") || !strings.Contains(rec.SyncError, "subPath") {
		t.Errorf("sync error %q", rec.SyncError)
	}
	found := false
	for _, e := range rec.Events {
		found = found || (e.Type == "Warning" && e.Reason == "Failed" && strings.HasPrefix(e.Message, "Error: "))
	}
	if !found {
		t.Errorf("no Failed event: %+v", rec.Events)
	}
	if len(fake.FakeContainers()) != 0 {
		t.Errorf("containers created: %v", fake.FakeContainers())
	}
}
