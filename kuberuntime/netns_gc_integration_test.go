//go:build integration

package kuberuntime

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cri-shim/cri-shim/sandbox"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCleanStaleNetNS(t *testing.T) {
	e := newEnv(t, "")
	sb := e.run(podCfg("netns-gc"))
	stale, err := sandbox.NewNetNS(e.rt.netnsDir(), "0123456789abcdef-stale")
	if err != nil {
		t.Fatal(err)
	}
	if !sandbox.NetNSPinned(stale) {
		t.Fatal("stale netns not pinned")
	}
	removed, err := e.rt.CleanStaleNetNS(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != stale {
		t.Fatalf("removed %v, want only %s", removed, stale)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale netns still there: %v", err)
	}
	if !sandbox.NetNSPinned(sb.NetNSPath) {
		t.Fatalf("the live pod's netns %s was removed", sb.NetNSPath)
	}
}

// ipReservations counts host-local's reservation files under the env's IPAM dir.
func (e *env) ipReservations() int {
	n := 0
	nets, _ := os.ReadDir(filepath.Join(e.dir, "ipam"))
	for _, nd := range nets {
		ents, _ := os.ReadDir(filepath.Join(e.dir, "ipam", nd.Name()))
		for _, ent := range ents {
			if net.ParseIP(ent.Name()) != nil {
				n++
			}
		}
	}
	return n
}

// unrecordedSandbox does what RunPodSandbox does before the pause container is recorded (the
// netns, the CNI ADD), as a daemon killed right then leaves it.
func (e *env) unrecordedSandbox(name string) (id, nsPath string) {
	e.t.Helper()
	cfg := podCfg(name)
	cfg.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: 18080 + int32(netSeq.Add(1)), Protocol: runtime.Protocol_TCP}}
	raw, err := proto.Marshal(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	id = newID()
	files := sandbox.PodFiles(e.rt.SandboxRootDir(id), e.rt.SandboxStateDir(id), false)
	if nsPath, err = e.rt.newPodNetNS(id, nil, files, false); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.rt.setupPodNetwork(context.Background(), id, nsPath, raw, cfg); err != nil {
		e.t.Fatal(err)
	}
	return id, nsPath
}

// A daemon killed between a pod's CNI ADD and its record: the restarted daemon's recovery gives
// the IP lease back (CNI DEL from the journal) before it removes the netns and the pod's dirs.
func TestRecoverReleasesUnrecordedSandboxNetwork(t *testing.T) {
	e := newEnv(t, "")
	base := e.ipReservations()
	id, nsPath := e.unrecordedSandbox("killed-mid-run")
	if got := e.ipReservations(); got != base+1 {
		t.Fatalf("IP reservations after ADD: %d, want %d", got, base+1)
	}
	e.newRuntime() // recover
	if got := e.ipReservations(); got != base {
		t.Fatalf("IP reservations after recovery: %d, want %d (leaked)", got, base)
	}
	for _, p := range []string{nsPath, e.rt.SandboxStateDir(id), e.rt.SandboxRootDir(id)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}

// When the DEL fails at recovery (the node's CNI config not there yet), the journal stays and the
// periodic GC releases the lease once the config is back.
func TestStaleNetNSGCRetriesFailedDel(t *testing.T) {
	e := newEnv(t, "")
	base := e.ipReservations()
	id, nsPath := e.unrecordedSandbox("killed-mid-run")
	conf := filepath.Join(e.confDir, "10-test.conflist")
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	rt := e.newRuntime() // recover: DEL fails
	if got := e.ipReservations(); got != base+1 {
		t.Fatalf("IP reservations after a failed DEL: %d, want %d", got, base+1)
	}
	if _, err := os.Stat(rt.cniJournalPath(id)); err != nil {
		t.Fatalf("journal gone after a failed DEL: %v", err)
	}
	if _, err := os.Stat(nsPath); !os.IsNotExist(err) {
		t.Errorf("netns %s left: %v", nsPath, err)
	}
	if _, err := rt.CleanStaleNetNS(0); err != nil {
		t.Fatal(err)
	}
	if got := e.ipReservations(); got != base+1 {
		t.Fatalf("IP reservations: %d, want %d while the config is missing", got, base+1)
	}
	if err := os.WriteFile(conf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.CleanStaleNetNS(0); err != nil {
		t.Fatal(err)
	}
	if got := e.ipReservations(); got != base {
		t.Fatalf("IP reservations after the GC round: %d, want %d (leaked)", got, base)
	}
	if _, err := os.Stat(rt.SandboxStateDir(id)); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
}

// The periodic GC alone (no restart): a stale netns with a journal gets its DEL before removal.
func TestCleanStaleNetNSReleasesNetwork(t *testing.T) {
	e := newEnv(t, "")
	base := e.ipReservations()
	id, nsPath := e.unrecordedSandbox("orphan")
	removed, err := e.rt.CleanStaleNetNS(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != nsPath {
		t.Fatalf("removed %v, want %s", removed, nsPath)
	}
	if got := e.ipReservations(); got != base {
		t.Fatalf("IP reservations: %d, want %d (leaked)", got, base)
	}
	if _, err := os.Stat(e.rt.SandboxStateDir(id)); !os.IsNotExist(err) {
		t.Errorf("state dir left: %v", err)
	}
}
