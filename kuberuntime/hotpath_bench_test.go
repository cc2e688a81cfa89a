package kuberuntime

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
)

// BenchmarkListContainersFilter is ListContainers' filtering at 500 containers: by label selector
// (matching one pod's 5 containers), by state, and by ID prefix.
func BenchmarkListContainersFilter(b *testing.B) {
	r := listBenchRuntime(b)
	ctx := context.Background()
	running := legacy.ContainerStateRunning
	cases := []struct {
		name   string
		filter *legacy.ContainerFilter
		want   int
	}{
		{"labels", &legacy.ContainerFilter{Labels: map[string]string{"io.kubernetes.pod.uid": "uid-42"}}, 5},
		{"state", &legacy.ContainerFilter{State: &running}, 500},
		{"id-prefix", &legacy.ContainerFilter{ID: fmt.Sprintf("%064d", 123)[:20] + "0000000000000000000000000000000000000000000123"[:44]}, 1},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				list, err := r.ListContainers(ctx, c.filter)
				if err != nil || len(list) != c.want {
					b.Fatalf("list: %d %v", len(list), err)
				}
			}
		})
	}
}

// BenchmarkStatusCache is the pod status cache of 100 pods: Get (the kubelet's reads), Set (the
// feeder's writes) and GetNewerThan of an entry already fresh enough (no wait).
func BenchmarkStatusCache(b *testing.B) {
	c := legacy.NewCache()
	now := time.Now()
	uids := make([]legacy.UID, 100)
	for i := range uids {
		uids[i] = legacy.UID(fmt.Sprint("uid-", i))
		c.Set(uids[i], &legacy.PodStatus{ID: uids[i], Name: "p", Namespace: "ns", IPs: []string{"10.88.0.2"}}, nil, now)
	}
	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if st, _ := c.Get(uids[i%100]); st == nil {
				b.Fatal("nil")
			}
		}
	})
	b.Run("set", func(b *testing.B) {
		b.ReportAllocs()
		st := &legacy.PodStatus{ID: uids[0]}
		for i := range b.N {
			c.Set(uids[i%100], st, nil, now.Add(time.Duration(i)))
		}
	})
	b.Run("get-newer-than", func(b *testing.B) {
		b.ReportAllocs()
		c.UpdateTime(now.Add(time.Hour))
		for i := range b.N {
			if st, _ := c.GetNewerThan(uids[i%100], now); st == nil {
				b.Fatal("nil")
			}
		}
	})
	b.Run("get-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				c.Get(uids[i%100])
				i++
			}
		})
	})
}
