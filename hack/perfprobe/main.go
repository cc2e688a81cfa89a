// perfprobe measures the list and status RPCs of a CRI endpoint from a client, as the kubelet
// calls them: ListContainers, ListPodSandbox, ListContainerStats, and ContainerStatus and
// PodSandboxStatus with and without verbose (median, p90, p99, max and first call, in ms). Use it on
// a node already filled, e.g. as benchclient run -at-full "perfprobe -endpoint unix://SOCK".
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	ep := flag.String("endpoint", "", "CRI endpoint (unix:///path)")
	n := flag.Int("n", 200, "calls measured per list or status operation")
	sn := flag.Int("stats-n", 20, "ListContainerStats calls measured")
	ops := flag.String("ops", "lc,lp,lcs,cs,csv,ps,psv", "operations, in order: lc ListContainers, lp ListPodSandbox, "+
		"lcs ListContainerStats, cs/csv ContainerStatus (verbose), ps/psv PodSandboxStatus (verbose), "+
		"v Version (the round trip with an empty answer: the floor of any call), "+
		"dec (no call: the client's decoding alone of one ListContainers, ListPodSandbox and ListContainerStats answer)")
	sleep := flag.Duration("sleep", 0, "pause between calls")
	flag.Parse()
	conn, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(*ep, "unix://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "perfprobe:", err)
		os.Exit(1)
	}
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	ctx := context.Background()
	lc, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(lc.Containers) == 0 {
		fmt.Fprintln(os.Stderr, "perfprobe: no containers to measure:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "%d containers\n", len(lc.Containers))
	k := 0
	run := func(name string, n int, f func() error) {
		var ds []time.Duration
		for i := 0; i < n; i++ {
			t := time.Now()
			if err := f(); err != nil {
				fmt.Println(name, "error", err)
				return
			}
			ds = append(ds, time.Since(t))
			if *sleep > 0 {
				time.Sleep(*sleep)
			}
		}
		first := ds[0]
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		p := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))].Microseconds()) / 1000 }
		fmt.Printf("%-22s n=%d median %.3f p90 %.3f p99 %.3f max %.3f first %.3f ms\n", name, n, p(0.5), p(0.9), p(0.99), p(1), float64(first.Microseconds())/1000)
	}
	for _, op := range strings.Split(*ops, ",") {
		switch op {
		case "lc":
			run("ListContainers", *n, func() error { _, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); return err })
		case "lp":
			run("ListPodSandbox", *n, func() error { _, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); return err })
		case "lcs":
			run("ListContainerStats", *sn, func() error {
				_, err := rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
				return err
			})
		case "cs", "csv":
			run("ContainerStatus "+op, *n, func() error {
				k++
				_, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: lc.Containers[k%len(lc.Containers)].Id, Verbose: op == "csv"})
				return err
			})
		case "v":
			run("Version", *n, func() error { _, err := rt.Version(ctx, &runtimeapi.VersionRequest{}); return err })
		case "dec":
			lp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				fmt.Println("dec error", err)
				continue
			}
			lcs, err := rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
			if err != nil {
				fmt.Println("dec error", err)
				continue
			}
			for _, m := range []struct {
				name string
				msg  proto.Message
				dst  func() proto.Message
			}{
				{"decode ListContainers", lc, func() proto.Message { return &runtimeapi.ListContainersResponse{} }},
				{"decode ListPodSandbox", lp, func() proto.Message { return &runtimeapi.ListPodSandboxResponse{} }},
				{"decode ListContainerStats", lcs, func() proto.Message { return &runtimeapi.ListContainerStatsResponse{} }},
			} {
				b, err := proto.Marshal(m.msg)
				if err != nil {
					fmt.Println("dec error", err)
					continue
				}
				run(fmt.Sprintf("%s (%d KB)", m.name, len(b)/1024), *n, func() error { return proto.Unmarshal(b, m.dst()) })
			}
		case "ps", "psv":
			run("PodSandboxStatus "+op, *n, func() error {
				k++
				_, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: lc.Containers[k%len(lc.Containers)].PodSandboxId, Verbose: op == "psv"})
				return err
			})
		}
	}
}
