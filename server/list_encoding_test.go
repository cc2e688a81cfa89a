package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// listerBackend gives the fake runtime the pre-encoded list of the containerd runtime.
type listerBackend struct {
	*legacytest.FakeRuntime
	calls int
}

func (l *listerBackend) ListCRIContainers(ctx context.Context, f *legacy.ContainerFilter, conv func(*legacy.ContainerDetails) *runtime.Container) ([]*runtime.Container, [][]byte, error) {
	l.calls++
	ds, err := l.ListContainers(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	var out []*runtime.Container
	var wire [][]byte
	for _, d := range ds {
		e := conv(d)
		b, err := proto.Marshal(e)
		if err != nil {
			return nil, nil, err
		}
		out, wire = append(out, e), append(wire, b)
	}
	return out, wire, nil
}

func TestListContainersPreEncoded(t *testing.T) {
	be := &listerBackend{FakeRuntime: legacytest.NewFakeRuntime()}
	opts := Options{Backend: be, Version: "test"}
	c := dial(t, opts)
	ctx := context.Background()
	var pods []string
	for p := range 3 {
		cfg := podConfig(fmt.Sprint("pod", p))
		r, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, r.PodSandboxId)
		for i := range 4 {
			if _, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: r.PodSandboxId,
				Config: containerConfig(fmt.Sprint("c", i)), SandboxConfig: cfg}); err != nil {
				t.Fatal(err)
			}
		}
	}
	writes := preEncodedWrites.Load()
	srv := NewRuntimeServer(opts) // in process: no stash, the plain response
	for _, f := range []*runtime.ContainerFilter{nil, {PodSandboxId: pods[1]}, {Id: "nothing"}} {
		got, err := c.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		want, err := srv.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		byID := func(a, b *runtime.Container) int { return strings.Compare(a.Id, b.Id) }
		slices.SortFunc(got.Containers, byID)
		slices.SortFunc(want.Containers, byID)
		if len(want.Containers) == 0 && f == nil {
			t.Fatal("nothing listed")
		}
		if !proto.Equal(got, want) {
			t.Fatalf("filter %v: over gRPC %v, in process %v", f, got, want)
		}
	}
	// The empty list has no entries to stash (nil wire here): encoded as usual.
	if w := preEncodedWrites.Load() - writes; w != 2 {
		t.Fatalf("%d responses written from their entries, want 2", w)
	}
	if be.calls != 6 {
		t.Fatalf("lister called %d times", be.calls)
	}
	n := 0
	preEncoded.Range(func(_, _ any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d pre-encoded responses left behind", n)
	}
}

func TestEncodeContainerList(t *testing.T) {
	in := &runtime.ListContainersResponse{Containers: []*runtime.Container{
		{Id: "a", Labels: map[string]string{"k": "v"}, Metadata: &runtime.ContainerMetadata{Name: "x", Attempt: 2}},
		{Id: "b", State: runtime.ContainerState_CONTAINER_EXITED, Annotations: map[string]string{"a": strings.Repeat("z", 300)}},
	}}
	var wire [][]byte
	for _, c := range in.Containers {
		b, _ := proto.Marshal(c)
		wire = append(wire, b)
	}
	out := &runtime.ListContainersResponse{}
	if err := proto.Unmarshal(encodeContainerList(wire), out); err != nil || !proto.Equal(in, out) {
		t.Fatalf("%v %v", out, err)
	}
}

// BenchmarkEncodeContainerList: a 500-container response encoded by proto.Marshal, and written
// from its entries' encodings.
func BenchmarkEncodeContainerList(b *testing.B) {
	resp := &runtime.ListContainersResponse{}
	var wire [][]byte
	for i := range 500 {
		c := &runtime.Container{Id: fmt.Sprintf("%064d", i), PodSandboxId: fmt.Sprintf("%064d", i/5),
			Metadata: &runtime.ContainerMetadata{Name: fmt.Sprint("c", i%5)},
			Image:    &runtime.ImageSpec{Image: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
			ImageRef: "sha256:" + fmt.Sprintf("%064d", 1), ImageId: "sha256:" + fmt.Sprintf("%064d", 1),
			State: runtime.ContainerState_CONTAINER_RUNNING, CreatedAt: int64(i),
			Labels: map[string]string{"io.kubernetes.container.name": fmt.Sprint("c", i%5), "io.kubernetes.pod.uid": fmt.Sprint("uid-", i/5),
				"io.kubernetes.pod.name": fmt.Sprint("pod", i/5), "io.kubernetes.pod.namespace": "bench"},
			Annotations: map[string]string{"io.kubernetes.container.restartCount": "0",
				"io.kubernetes.container.terminationMessagePath": "/dev/termination-log"}}
		resp.Containers = append(resp.Containers, c)
		w, _ := proto.Marshal(c)
		wire = append(wire, w)
	}
	b.Run("proto.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := proto.Marshal(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pre-encoded", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if len(encodeContainerList(wire)) == 0 {
				b.Fatal("empty")
			}
		}
	})
}

func TestTieredBufferPool(t *testing.T) {
	p := newTieredBufferPool(64, 256)
	for _, c := range []struct{ n, cap int }{{0, 64}, {10, 64}, {64, 64}, {65, 256}, {256, 256}, {257, 257}} {
		b := p.Get(c.n)
		if len(*b) != c.n || cap(*b) != c.cap {
			t.Fatalf("Get(%d): len %d cap %d, want cap %d", c.n, len(*b), cap(*b), c.cap)
		}
		p.Put(b)
	}
	// Only buffers of a tier's exact size are kept: a foreign one is dropped, never handed out.
	odd := make([]byte, 100)
	p.Put(&odd)
	for range 10 {
		if b := p.Get(80); cap(*b) != 256 {
			t.Fatalf("Get(80) handed out a buffer of cap %d", cap(*b))
		}
	}
}

// TestListCodecReusesBuffers: the codec writes a response into a buffer an earlier, larger
// response was written into (never cleared): what it sends is the new response's bytes, whole.
func TestListCodecReusesBuffers(t *testing.T) {
	c := newListCodec()
	resp := func(n int, fill string) (*runtime.ListContainersResponse, [][]byte) {
		r := &runtime.ListContainersResponse{}
		var wire [][]byte
		for i := range n {
			e := &runtime.Container{Id: fmt.Sprint(fill, i), Labels: map[string]string{"k": strings.Repeat(fill, 50)}}
			b, _ := proto.Marshal(e)
			r.Containers, wire = append(r.Containers, e), append(wire, b)
		}
		return r, wire
	}
	for _, n := range []int{300, 7, 120, 1} {
		r, wire := resp(n, fmt.Sprint(n%10))
		preEncoded.Store(r, wire)
		got, err := c.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := proto.Marshal(r)
		if b := got.Materialize(); !slices.Equal(b, want) {
			t.Fatalf("%d entries: %d bytes written, want %d (the same)", n, len(b), len(want))
		}
		got.Free()
	}
}
