package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/legacy"
)

type fakeGCRuntime struct {
	cs        []legacy.GCContainer
	sandboxes map[string]bool
	removed   []string
}

func (f *fakeGCRuntime) GCContainers(context.Context) ([]legacy.GCContainer, error) { return f.cs, nil }
func (f *fakeGCRuntime) SandboxExists(_ context.Context, id string) bool            { return f.sandboxes[id] }
func (f *fakeGCRuntime) RemoveGCContainer(_ context.Context, c legacy.GCContainer) error {
	f.removed = append(f.removed, c.ID)
	return nil
}

func TestGCDryRunPrintsPlan(t *testing.T) {
	old := time.Now().Add(-time.Hour)
	rt := &fakeGCRuntime{
		sandboxes: map[string]bool{"live": true},
		cs: []legacy.GCContainer{
			{ID: "orphan1", Name: "app", PodUID: "gone-pod", SandboxID: "gone", CreatedAt: old},
			{ID: "dead-live-1", Name: "app", PodUID: "pod", SandboxID: "live", CreatedAt: old},
			{ID: "dead-live-2", Name: "app", PodUID: "pod", SandboxID: "live", CreatedAt: old.Add(time.Minute)},
			{ID: "running", Name: "web", PodUID: "pod", SandboxID: "live", CreatedAt: old, Running: true},
			{ID: "young-orphan", Name: "app", PodUID: "gone-pod", SandboxID: "gone", CreatedAt: time.Now()},
		},
	}
	// Defaults: only the orphan old enough; never a live sandbox's container.
	var out bytes.Buffer
	if err := printGCPlan(context.Background(), rt, gcPolicy(config.Default()), &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "orphan1") || !strings.Contains(s, "sandbox gone") || strings.Contains(s, "dead-live") ||
		strings.Contains(s, "young-orphan") || strings.Contains(s, "running") || !strings.Contains(s, "1 container(s) would be removed") {
		t.Fatalf("default policy plan:\n%s", s)
	}
	// The operator asks for one dead container per pod container name: the older one of the live pod goes too.
	cfg := config.Default()
	cfg.GCMaxPerPodContainer = 1
	out.Reset()
	if err := printGCPlan(context.Background(), rt, gcPolicy(cfg), &out); err != nil {
		t.Fatal(err)
	}
	s = out.String()
	if !strings.Contains(s, "dead-live-1") || strings.Contains(s, "dead-live-2") || !strings.Contains(s, "policy limit") ||
		!strings.Contains(s, "2 container(s) would be removed") {
		t.Fatalf("max 1 per pod container plan:\n%s", s)
	}
	if len(rt.removed) != 0 {
		t.Fatalf("dry run removed %v", rt.removed)
	}
}
