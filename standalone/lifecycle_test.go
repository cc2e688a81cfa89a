package standalone

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
)

// hookPod is a pod manifest whose container "app" has the lifecycle block given (indented for
// the container).
func hookPod(lifecycle string) string {
	return `
apiVersion: v1
kind: Pod
metadata: {name: hooks}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    image: busybox:1.36
    ports: [{name: http, containerPort: 8080}]
    lifecycle:
` + lifecycle
}

func convertHooks(t *testing.T, manifest string) (*Pod, error) {
	t.Helper()
	pod, err := ParseManifest([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	return Convert(pod, "", ConvertOptions{})
}

func TestConvertLifecycleHooks(t *testing.T) {
	p, err := convertHooks(t, hookPod(`
      postStart:
        exec: {command: ["sh", "-c", "echo started > /tmp/s"]}
      preStop:
        httpGet: {path: /drain, port: http, scheme: HTTPS, httpHeaders: [{name: X-Drain, value: "1"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &legacy.Lifecycle{
		PostStart: &legacy.LifecycleHandler{Exec: &legacy.ExecAction{Command: []string{"sh", "-c", "echo started > /tmp/s"}}},
		PreStop: &legacy.LifecycleHandler{HTTPGet: &legacy.HTTPGetAction{Port: 8080, Path: "/drain", Scheme: "https",
			Headers: map[string]string{"X-Drain": "1"}}},
	}
	if got := p.Spec.Containers[0].Lifecycle; !reflect.DeepEqual(got, want) {
		t.Fatalf("lifecycle %+v, want %+v", got, want)
	}
	p, err = convertHooks(t, hookPod(`
      preStop:
        sleep: {seconds: 5}
`))
	if err != nil {
		t.Fatal(err)
	}
	if lc := p.Spec.Containers[0].Lifecycle; lc == nil || lc.PostStart != nil || lc.PreStop.Sleep.Seconds != 5 {
		t.Fatalf("sleep hook %+v", lc)
	}
}

func TestConvertLifecycleRefusesMalformedHooks(t *testing.T) {
	for name, tc := range map[string]struct{ lifecycle, want string }{
		"no command":     {"      postStart:\n        exec: {command: []}\n", "exec.command is empty"},
		"port range":     {"      preStop:\n        httpGet: {port: 70000}\n", "out of range"},
		"unknown port":   {"      preStop:\n        httpGet: {port: admin}\n", "no container port"},
		"scheme":         {"      preStop:\n        httpGet: {port: 80, scheme: FTP}\n", "httpGet.scheme"},
		"tcpSocket":      {"      preStop:\n        tcpSocket: {port: 80}\n", "tcpSocket handlers are deprecated"},
		"no action":      {"      postStart: {}\n", "exactly one of"},
		"two actions":    {"      postStart:\n        exec: {command: [\"true\"]}\n        sleep: {seconds: 1}\n", "exactly one of"},
		"sleep too long": {"      preStop:\n        sleep: {seconds: 11}\n", "termination grace period"},
		"stop signal":    {"      stopSignal: SIGUSR1\n", "stopSignal"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := convertHooks(t, hookPod(tc.lifecycle))
			if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want InvalidArgument with %q", err, tc.want)
			}
		})
	}
	_, err := convertHooks(t, `
apiVersion: v1
kind: Pod
metadata: {name: hooks}
spec:
  initContainers:
  - name: init
    image: busybox:1.36
    lifecycle: {postStart: {exec: {command: ["true"]}}}
  containers:
  - {name: app, image: busybox:1.36}
`)
	if err == nil || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("hooks on an init container: %v", err)
	}
}

// TestManagerRunsHooks: the manager runs a container's postStart hook after its start and its
// preStop hook before the pod is killed when the manifest goes.
func TestManagerRunsHooks(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	fake := legacytest.NewFakeRuntime()
	m, err := New(Options{Dir: filepath.Join(dir, "manifests"), StateDir: state, VolumeRoot: filepath.Join(dir, "vol"),
		PodLogRoot: filepath.Join(dir, "logs"), Runtime: fake, ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the manifests dir", func() bool { _, err := os.Stat(filepath.Join(dir, "manifests")); return err == nil })
	manifest := filepath.Join(dir, "manifests", "hooks.yaml")
	if err := WriteFileAtomic(manifest, []byte(hookPod(`
      postStart: {exec: {command: ["started"]}}
      preStop: {exec: {command: ["stopping"]}}
`)), 0o600); err != nil {
		t.Fatal(err)
	}
	calls := func() string {
		fake.Lock()
		defer fake.Unlock()
		var out []string
		for _, c := range fake.CalledFunctions {
			switch c {
			case "StartContainer", "ExecSync", "StopContainer", "KillPod":
				out = append(out, c)
			}
		}
		return strings.Join(out, " ")
	}
	waitFor(t, "the postStart hook", func() bool { return strings.HasPrefix(calls(), "StartContainer ExecSync") })
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pod killed", func() bool { return strings.Contains(calls(), "KillPod") })
	if got := calls(); got != "StartContainer ExecSync ExecSync StopContainer KillPod" {
		t.Fatalf("calls %q: want the postStart hook after the start, the preStop hook before the kill", got)
	}
}
