package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sandboxListerBackend gives the fake runtime the pre-encoded sandbox list of the containerd runtime.
type sandboxListerBackend struct {
	*legacytest.FakeRuntime
	calls int
}

func (l *sandboxListerBackend) ListCRISandboxes(ctx context.Context, f *legacy.SandboxFilter, conv func(*legacy.SandboxStatus) *runtime.PodSandbox) ([]*runtime.PodSandbox, [][]byte, error) {
	l.calls++
	list, err := l.ListPodSandbox(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	var out []*runtime.PodSandbox
	var wire [][]byte
	for _, st := range list {
		e := conv(st)
		b, err := proto.Marshal(e)
		if err != nil {
			return nil, nil, err
		}
		out, wire = append(out, e), append(wire, b)
	}
	return out, wire, nil
}

// TestListPodSandboxPreEncoded: a ListPodSandboxResponse written from its entries' encodings is
// the one the plain proto codec writes.
func TestListPodSandboxPreEncoded(t *testing.T) {
	be := &sandboxListerBackend{FakeRuntime: legacytest.NewFakeRuntime()}
	opts := Options{Backend: be, Version: "test"}
	c := dial(t, opts)
	ctx := context.Background()
	var pods []string
	for p := range 4 {
		r, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig(fmt.Sprint("pod", p))})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, r.PodSandboxId)
	}
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pods[2]}); err != nil {
		t.Fatal(err)
	}
	writes := preEncodedWrites.Load()
	srv := NewRuntimeServer(opts) // in process: no stash, the plain response
	ready := &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}
	for _, f := range []*runtime.PodSandboxFilter{nil, {Id: pods[1]}, {State: ready}, {Id: "nothing"}} {
		got, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		want, err := srv.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Items) == 0 && f == nil {
			t.Fatal("nothing listed")
		}
		if !proto.Equal(got, want) {
			t.Fatalf("filter %v: over gRPC %v, in process %v", f, got, want)
		}
		if f != nil && f.State != nil && len(got.Items) != 3 {
			t.Fatalf("ready filter: %d items", len(got.Items))
		}
	}
	if w := preEncodedWrites.Load() - writes; w != 3 {
		t.Fatalf("%d responses written from their entries, want 3", w)
	}
	if be.calls != 8 {
		t.Fatalf("lister called %d times", be.calls)
	}
	n := 0
	preEncoded.Range(func(_, _ any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d pre-encoded responses left behind", n)
	}
}

// statsListerBackend gives the fake runtime the pre-encoded stats list of the containerd runtime.
type statsListerBackend struct {
	*legacytest.FakeRuntime
	calls int
}

func (l *statsListerBackend) ListCRIContainerStats(ctx context.Context, f *legacy.ContainerStatsFilter, conv func(*legacy.ContainerStats) *runtime.ContainerStats) ([]*runtime.ContainerStats, [][]byte, error) {
	l.calls++
	list, err := l.ListContainerStats(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	var out []*runtime.ContainerStats
	var wire [][]byte
	for _, st := range list {
		e := conv(st)
		b, err := proto.Marshal(e)
		if err != nil {
			return nil, nil, err
		}
		out, wire = append(out, e), append(wire, b)
	}
	return out, wire, nil
}

// TestListContainerStatsPreEncoded: a ListContainerStatsResponse written from its entries'
// encodings is the one the plain proto codec writes.
func TestListContainerStatsPreEncoded(t *testing.T) {
	be := &statsListerBackend{FakeRuntime: legacytest.NewFakeRuntime()}
	opts := Options{Backend: be, Version: "test"}
	c := dial(t, opts)
	ctx := context.Background()
	cfg := podConfig("pod")
	r, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		cr, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: r.PodSandboxId,
			Config: containerConfig(fmt.Sprint("c", i)), SandboxConfig: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
			t.Fatal(err)
		}
	}
	writes := preEncodedWrites.Load()
	srv := NewRuntimeServer(opts)
	got, err := c.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := srv.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Stats) != 3 || !proto.Equal(got, want) {
		t.Fatalf("over gRPC %v, in process %v", got, want)
	}
	if w := preEncodedWrites.Load() - writes; w != 1 || be.calls != 2 {
		t.Fatalf("%d responses written from their entries (want 1), %d calls", w, be.calls)
	}
}
