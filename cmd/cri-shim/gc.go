package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/kuberuntime"
	"github.com/cri-shim/cri-shim/legacy"
)

// gcPolicy is the container GC policy of the config. With the defaults (no limits) only the dead
// containers whose sandbox is gone are removed: a live sandbox's containers are the kubelet's to
// collect unless the operator sets gc_max_per_pod_container or gc_max_containers.
func gcPolicy(cfg config.Config) legacy.ContainerGCPolicy {
	return legacy.ContainerGCPolicy{
		MinAge:             time.Duration(cfg.GCMinAge),
		MaxPerPodContainer: cfg.GCMaxPerPodContainer,
		MaxContainers:      cfg.GCMaxContainers,
	}
}

// gcMain is `cri-shim gc --dry-run`: it prints what the daemon's container GC would remove now
// with the config's policy, reading containerd's records without touching them (a running daemon
// is left alone).
func gcMain(ctx context.Context, cfg config.Config, dryRun bool) error {
	if !dryRun {
		return errors.New("usage: cri-shim gc --dry-run [daemon flags] (the daemon itself collects every gc_interval)")
	}
	b, err := connectContainerd(ctx, cfg, false, nil)
	if err != nil {
		return err
	}
	defer b.close()
	view, err := kuberuntime.NewContainerdGCView(ctx, b.client, cfg.ContainerdNamespace)
	if err != nil {
		return err
	}
	return printGCPlan(ctx, view, gcPolicy(cfg), os.Stdout)
}

// printGCPlan prints the containers the policy would remove from rt, in removal order, with why.
func printGCPlan(ctx context.Context, rt legacy.GCRuntime, policy legacy.ContainerGCPolicy, out io.Writer) error {
	gc, err := legacy.NewContainerGC(rt, policy)
	if err != nil {
		return err
	}
	plan, err := gc.Plan(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "policy: min age %s, max per pod container %s, max containers %s\n",
		policy.MinAge, limit(policy.MaxPerPodContainer), limit(policy.MaxContainers))
	if len(plan) == 0 {
		fmt.Fprintln(out, "nothing to remove")
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER\tNAME\tPOD UID\tSANDBOX\tAGE\tREASON")
	for _, c := range plan {
		reason := "policy limit"
		switch {
		case c.Name == "" && c.PodUID == "":
			reason = "belongs to no pod"
		case c.SandboxID == "" || !rt.SandboxExists(ctx, c.SandboxID):
			reason = "sandbox gone"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", short(c.ID), c.Name, c.PodUID, short(c.SandboxID),
			now.Sub(c.CreatedAt).Round(time.Second), reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d container(s) would be removed (dry run: nothing was)\n", len(plan))
	return nil
}

func limit(n int) string {
	if n < 0 {
		return "none"
	}
	return fmt.Sprint(n)
}

func short(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
