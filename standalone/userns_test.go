package standalone

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy/legacytest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestUsernsAllocator: each pod gets a range of its own, aligned, from 2^30 up; the same one again
// (also for a new allocator: it is recorded in the pod's volume dir, 0600 under 0700); a removed
// pod's range is taken again; a corrupted record is an error, not a new range.
func TestUsernsAllocator(t *testing.T) {
	root := t.TempDir()
	a := usernsAllocator{root: root}
	idA, err := a.hostID("uid-a")
	if err != nil {
		t.Fatal(err)
	}
	idB, err := a.hostID("uid-b")
	if err != nil {
		t.Fatal(err)
	}
	if idA != usernsFirstID || idB != usernsFirstID+usernsLength {
		t.Fatalf("ranges %d, %d: want %d and the next", idA, idB, usernsFirstID)
	}
	if again, err := (usernsAllocator{root: root}).hostID("uid-a"); err != nil || again != idA {
		t.Fatalf("uid-a again: %d %v, want %d", again, err, idA)
	}
	st, err := os.Stat(filepath.Join(root, "uid-a", usernsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("record: %v %v", st, err)
	}
	if st, err := os.Stat(filepath.Join(root, "uid-a")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("pod dir: %v %v", st, err)
	}
	os.RemoveAll(filepath.Join(root, "uid-a")) // the pod and its volumes went
	if idC, err := a.hostID("uid-c"); err != nil || idC != idA {
		t.Errorf("uid-c: %d %v, want the freed %d", idC, err, idA)
	}
	os.WriteFile(filepath.Join(root, "uid-b", usernsFile), []byte("12 65536\n"), 0o600)
	if id, err := a.hostID("uid-b"); err == nil {
		t.Errorf("a corrupted record gave %d", id)
	}
	if _, err := (usernsAllocator{}).hostID("x"); err == nil {
		t.Error("no volume root: allocated")
	}
}

// TestManagerSecurityWiring: the manager converts with its seccomp root and gives each pod with
// hostUsers: false a range of its own (the placeholder of a validation-only conversion would
// have put every such pod on the same host IDs).
func TestManagerSecurityWiring(t *testing.T) {
	dir := t.TempDir()
	fake := legacytest.NewFakeRuntime()
	m, err := New(Options{Dir: filepath.Join(dir, "manifests"), VolumeRoot: filepath.Join(dir, "vol"),
		SeccompRoot: "/etc/seccomp-profiles", Runtime: fake,
		ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "manifests"), 0o700)
	for _, n := range []string{"a", "b"} {
		WriteFileAtomic(filepath.Join(dir, "manifests", n+".yaml"), []byte("metadata: {name: "+n+"}\n"+
			"spec: {hostUsers: false, containers: [{name: c-"+n+", image: b, securityContext: {seccompProfile: {type: Localhost, localhostProfile: p.json}}}]}\n"), 0o600)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "both pods' containers", func() bool { return running(fake, "c-a") != nil && running(fake, "c-b") != nil })
	hostIDs := map[uint32]string{}
	for _, n := range []string{"a", "b"} {
		c := running(fake, "c-"+n).Config
		if sp := c.Linux.SecurityContext.Seccomp; sp.GetLocalhostRef() != "/etc/seccomp-profiles/p.json" {
			t.Errorf("%s: seccomp %v", n, sp)
		}
		u := c.Linux.SecurityContext.NamespaceOptions.GetUsernsOptions()
		if u.GetMode() != runtime.NamespaceMode_POD || len(u.GetUids()) != 1 {
			t.Fatalf("%s: userns %v", n, u)
		}
		id := u.Uids[0].HostId
		if other, dup := hostIDs[id]; dup {
			t.Errorf("pods %s and %s share host IDs from %d", other, n, id)
		}
		hostIDs[id] = n
		pod, _ := ParseManifest([]byte("metadata: {name: " + n + "}"))
		if rec, err := readUsernsFile(filepath.Join(dir, "vol", string(PodUID(pod)), usernsFile)); err != nil || rec != id {
			t.Errorf("%s: recorded %d %v, runs with %d", n, rec, err, id)
		}
	}
}
