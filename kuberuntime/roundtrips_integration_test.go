//go:build integration

package kuberuntime

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"google.golang.org/grpc"
)

// callCounter counts the daemon's gRPC calls to containerd by method (streams included).
type callCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *callCounter) add(method string) {
	c.mu.Lock()
	c.counts[path.Base(path.Dir(method))+"/"+path.Base(method)]++
	c.mu.Unlock()
}

func (c *callCounter) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			c.add(method)
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			c.add(method)
			return streamer(ctx, desc, cc, method, opts...)
		}),
	}
}

// take returns the counts since the last take, and their sum.
func (c *callCounter) take() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, n := c.counts, 0
	for _, v := range got {
		n += v
	}
	c.counts = map[string]int{}
	return got, n
}

func formatCounts(m map[string]int) string {
	var s []string
	for k, v := range m {
		s = append(s, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// TestContainerdRoundTripsPerCall counts the containerd calls behind each CRI call of a pod's
// life (one container), as the daemon makes them, and holds each to a bound: a change that adds
// round trips to the hot path fails here rather than going unnoticed in a noisy benchmark. The
// counts are logged for the performance notes.
func TestContainerdRoundTripsPerCall(t *testing.T) {
	e := newEnv(t, "")
	counter := &callCounter{counts: map[string]int{}}
	client, err := containerd.New(e.ctrdAddress, containerd.WithDefaultNamespace("crishim-test"),
		containerd.WithExtraDialOpts(counter.dialOptions()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	e.client = client
	rt := e.newRuntime()
	e.rt = rt
	ctx := context.Background()

	// Warm up: the images pulled and the pause rootfs made by a first pod, so that the counts are
	// those of a node that has run a pod before (the kubelet's steady state).
	warm, _ := e.podWithLogs("warm")
	warmCtr := e.createStart(warm.ID, ctrCfg("warm", "sleep", "600"))
	if err := rt.StopContainer(ctx, warmCtr, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // background work of the warm-up (exit handling) done
	counter.take()

	// bounds are the most containerd calls each CRI call may make.
	bounds := map[string]int{
		"RunPodSandbox": 12, "CreateContainer": 8, "StartContainer": 8, "StopContainer": 8,
		"RemoveContainer": 8, "StopPodSandbox": 10, "RemovePodSandbox": 10,
	}
	var id, ctr string
	steps := []struct {
		name string
		do   func() error
	}{
		{"RunPodSandbox", func() error {
			cfg := podCfg("counted")
			cfg.LogDirectory = e.dir + "/logs/counted"
			sid, res := rt.RunPodSandbox(ctx, cfg, "")
			id = sid
			return res.Error()
		}},
		{"CreateContainer", func() (err error) {
			ctr, err = rt.CreateContainer(ctx, id, ctrCfg("c", "sleep", "600"))
			return err
		}},
		{"StartContainer", func() error { return rt.StartContainer(ctx, ctr) }},
		{"StopContainer", func() error { return rt.StopContainer(ctx, ctr, 0) }},
		{"RemoveContainer", func() error { return rt.RemoveContainer(ctx, ctr) }},
		{"StopPodSandbox", func() error { return rt.StopPodSandbox(ctx, id).Error() }},
		{"RemovePodSandbox", func() error { return rt.RemovePodSandbox(ctx, id) }},
	}
	total := 0
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		time.Sleep(100 * time.Millisecond) // what the call set going in the background is counted with it
		got, n := counter.take()
		total += n
		t.Logf("%-16s %2d containerd calls: %s", s.name, n, formatCounts(got))
		if n > bounds[s.name] {
			t.Errorf("%s made %d containerd calls, more than its bound %d: %s", s.name, n, bounds[s.name], formatCounts(got))
		}
	}
	t.Logf("a pod's life with one container: %d containerd calls", total)
}
