//go:build integration

package kuberuntime

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// verboseSpec is the runtime spec of a verbose status's info.
func verboseSpec(t *testing.T, info map[string]string) *runtimespec.Spec {
	t.Helper()
	var v struct {
		RuntimeSpec *runtimespec.Spec `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(info["info"]), &v); err != nil || v.RuntimeSpec == nil {
		t.Fatalf("verbose info without a runtime spec (%v): %.300s", err, info["info"])
	}
	return v.RuntimeSpec
}

// TestVerboseStatusSpecFile: the verbose statuses report the runtime spec from the file written at
// creation, the same as containerd's; an update rewrites it; without the file (a container of an
// older version), the spec comes from containerd and the file is written again.
func TestVerboseStatusSpecFile(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	sb, _ := e.podWithLogs("specfile")
	id := e.createStart(sb.ID, ctrCfg("sleeper", "sleep", "600"))
	nsCtx := namespaces.WithNamespace(ctx, "crishim-test")

	c, err := e.rt.ctrs().store.get(id)
	if err != nil {
		t.Fatal(err)
	}
	ctrFile := filepath.Join(c.rootDir, specFile)
	sbFile := filepath.Join(e.rt.SandboxRootDir(sb.ID), specFile)
	for _, f := range []string{ctrFile, sbFile} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("spec file not written at creation: %v", err)
		}
	}
	want := func(id string) *runtimespec.Spec {
		cntr, err := e.client.LoadContainer(nsCtx, id)
		if err != nil {
			t.Fatal(err)
		}
		s, err := cntr.Spec(nsCtx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	check := func(what string, got, want *runtimespec.Spec) {
		t.Helper()
		if got.Linux == nil || want.Linux == nil || got.Linux.CgroupsPath != want.Linux.CgroupsPath ||
			got.Hostname != want.Hostname || len(got.Mounts) != len(want.Mounts) || (got.Process == nil) != (want.Process == nil) ||
			got.Process != nil && got.Process.Args[0] != want.Process.Args[0] {
			t.Fatalf("%s: spec differs from containerd's:\n%+v\n%+v", what, got, want)
		}
	}
	st, err := e.rt.ContainerStatus(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	check("container", verboseSpec(t, st.Info), want(id))
	ss, err := e.rt.PodSandboxStatus(ctx, sb.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	check("sandbox", verboseSpec(t, ss.Info), want(sb.ID))

	// An update changes the spec: the verbose status shows the new limit.
	if err := e.rt.UpdateContainerResources(ctx, id, &runtime.LinuxContainerResources{CpuShares: 300, MemoryLimitInBytes: 300 << 20}); err != nil {
		t.Fatal(err)
	}
	st, _ = e.rt.ContainerStatus(ctx, id, true)
	if s := verboseSpec(t, st.Info); s.Linux.Resources == nil || s.Linux.Resources.Memory == nil || *s.Linux.Resources.Memory.Limit != 300<<20 {
		t.Fatalf("verbose spec after the update: %+v", s.Linux.Resources)
	}

	// No file: from containerd, and the file is back.
	for _, f := range []string{ctrFile, sbFile} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = e.rt.ContainerStatus(ctx, id, true)
	if s := verboseSpec(t, st.Info); *s.Linux.Resources.Memory.Limit != 300<<20 {
		t.Fatalf("fallback spec: %+v", s.Linux.Resources)
	}
	ss, _ = e.rt.PodSandboxStatus(ctx, sb.ID, true)
	check("sandbox fallback", verboseSpec(t, ss.Info), want(sb.ID))
	for _, f := range []string{ctrFile, sbFile} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("spec file not written again: %v", err)
		}
	}
	// A damaged file is not served.
	if err := os.WriteFile(ctrFile, []byte(`{"ociVersion": "1.`), 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ = e.rt.ContainerStatus(ctx, id, true)
	check("container, damaged file", verboseSpec(t, st.Info), want(id))
}
