//go:build integration

package standalone

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
)

// TestStandaloneLifecycleHooks runs a manifest with hooks on a real containerd: the postStart exec
// hook writes a file into the pod's emptyDir after the container starts, and the preStop exec hook
// writes one into a hostPath volume before the pod is killed when its manifest goes.
func TestStandaloneLifecycleHooks(t *testing.T) {
	if os.Getenv("CRI_SHIM_INTEGRATION") == "" {
		t.Fatal("CRI_SHIM_INTEGRATION is not set: run through make integration")
	}
	e := newITEnv(t, legacy.NewBackoff(time.Second, 2*time.Second, nil), legacy.ContainerGCPolicy{MinAge: time.Hour, MaxPerPodContainer: -1, MaxContainers: -1})
	out := filepath.Join(e.dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	e.apply("hooks", `
metadata: {name: hooks}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: app
    image: busybox:1.37.0
    command: [sleep, "3600"]
    volumeMounts: [{name: data, mountPath: /data}, {name: out, mountPath: /out}]
    lifecycle:
      postStart: {exec: {command: [sh, -c, 'echo started > /data/post']}}
      preStop: {exec: {command: [sh, -c, 'cat /data/post > /out/pre && echo stopping >> /out/pre']}}
  volumes:
  - {name: data, emptyDir: {}}
  - {name: out, hostPath: {path: `+out+`}}
`)
	var post string
	e.wait("the postStart hook's file in the emptyDir", 60*time.Second, func() bool {
		for _, p := range e.m.Pods() {
			if len(p.EmptyDirs) == 1 {
				b, err := os.ReadFile(filepath.Join(p.EmptyDirs[0], "post"))
				post = string(b)
				return err == nil && post != ""
			}
		}
		return false
	})
	if post != "started\n" {
		t.Fatalf("postStart wrote %q", post)
	}
	if c := runningOf(e.containers("hooks", "app")); c == nil {
		t.Fatalf("app not running after its postStart hook; events:\n%s", e.events("hooks"))
	}
	if err := os.Remove(filepath.Join(e.dir, "manifests", "hooks.yaml")); err != nil {
		t.Fatal(err)
	}
	var pre string
	e.wait("the preStop hook's file", 30*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(out, "pre"))
		pre = string(b)
		return err == nil && strings.Contains(pre, "stopping")
	})
	if pre != "started\nstopping\n" {
		t.Fatalf("preStop wrote %q", pre)
	}
	e.wait("the pod removed", 30*time.Second, func() bool { return len(e.containers("hooks", "app")) == 0 })
}
