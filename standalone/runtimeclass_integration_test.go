//go:build integration

package standalone

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/kuberuntime"
	"github.com/cri-shim/cri-shim/legacy"
)

// TestRuntimeClassNameRunsOnCrun: a manifest's runtimeClassName is its pod's runtime handler. A
// pod with runtimeClassName crun runs on crun: crun holds the state of its sandbox and container
// (the runc shim keeps its OCI runtime's state under /run/containerd/runc/<namespace>), runc none;
// a pod without one runs on runc.
func TestRuntimeClassNameRunsOnCrun(t *testing.T) {
	crun := testutil.Crun(t)
	// Debian 12's crun 1.8.1 runs specs of ociVersion 1.0.x alone (base_runtime_spec).
	base, err := kuberuntime.DefaultBaseSpec("1.0.2")
	if err != nil {
		t.Fatal(err)
	}
	e := newITEnvWith(t, legacy.NewBackoff(time.Second, 2*time.Second, nil),
		legacy.ContainerGCPolicy{MinAge: time.Hour, MaxPerPodContainer: -1, MaxContainers: -1},
		func(o *kuberuntime.Options) {
			o.RuntimeHandlers = append(kuberuntime.DefaultRuntimeHandlers(), kuberuntime.RuncHandler("crun", crun))
			o.HandlerSpecs = map[string]kuberuntime.HandlerSpec{"crun": {BaseSpec: base}}
		})
	e.apply("oncrun", `
metadata: {name: oncrun}
spec:
  runtimeClassName: crun
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: busybox:1.37.0, command: [sleep, "3600"]}
`)
	e.apply("onrunc", `
metadata: {name: onrunc}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: busybox:1.37.0, command: [sleep, "3600"]}
`)
	running := func(pod string) *legacy.ContainerDetails {
		var c *legacy.ContainerDetails
		e.wait(pod+"'s container running", 90*time.Second, func() bool {
			cs := e.containers(pod, "app")
			if len(cs) == 0 || cs[len(cs)-1].State != legacy.ContainerStateRunning {
				return false
			}
			c = cs[len(cs)-1]
			return true
		})
		return c
	}
	root := filepath.Join("/run/containerd/runc", "sa-test")
	crunState := func(id string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "crun", "--root", root, "state", id).Output()
		var st struct{ Status string }
		if err != nil || json.Unmarshal(out, &st) != nil {
			return ""
		}
		return st.Status
	}
	runcState := func(id string) bool {
		_, err := os.Stat(filepath.Join(root, id, "state.json"))
		return err == nil
	}

	// The pod's own process, the pause, runs on the handler too, when there is one (pods without
	// a pause process: CRI_SHIM_TEST_PAUSE_LESS=1).
	ids := func(c *legacy.ContainerDetails) []string {
		if os.Getenv("CRI_SHIM_TEST_PAUSE_LESS") == "1" {
			return []string{c.ID.ID}
		}
		return []string{c.SandboxID, c.ID.ID}
	}
	c := running("oncrun")
	for _, id := range ids(c) {
		if st := crunState(id); st != "running" {
			t.Errorf("oncrun: crun state of %s is %q, want running", id, st)
		}
		if runcState(id) {
			t.Errorf("oncrun: runc holds state of %s: runc ran it", id)
		}
	}
	c = running("onrunc")
	for _, id := range ids(c) {
		if !runcState(id) {
			t.Errorf("onrunc: runc holds no state of %s", id)
		}
		if st := crunState(id); st != "" {
			t.Errorf("onrunc: crun state of %s is %q: crun ran it", id, st)
		}
	}
}
