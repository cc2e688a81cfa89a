//go:build integration

package kuberuntime

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCrunHandler: a pod naming the handler crun runs its sandbox and containers under crun (the
// shim is given crun as its binary, and crun's state of the container says running), with the
// handler's passed-through pod annotations; a pod naming an unknown handler is InvalidArgument.
func TestCrunHandler(t *testing.T) {
	needsPause(t) // it checks crun runs the pause container, and the pod annotations its spec passes
	crun := testutil.Crun(t)
	e := newEnv(t, "")
	// Debian 12's crun 1.8.1 runs specs of ociVersion 1.0.x alone: its handler starts from a base
	// spec of that version, as an operator's base_runtime_spec would.
	base, err := DefaultBaseSpec("1.0.2")
	if err != nil {
		t.Fatal(err)
	}
	e.opts.RuntimeHandlers = append(DefaultRuntimeHandlers(), RuncHandler("crun", crun))
	e.opts.HandlerSpecs = map[string]HandlerSpec{"crun": {PodAnnotations: []string{"example.com/*"}, BaseSpec: base}}
	e.rt = e.newRuntime()
	ctx := e.rt.withNS(context.Background())

	cfg := podCfg("crun-pod")
	cfg.LogDirectory = filepath.Join(e.dir, "logs", "crun-pod")
	cfg.Annotations = map[string]string{"example.com/pass": "yes", "other.io/keep-out": "no"}
	sbID, res := e.rt.RunPodSandbox(context.Background(), cfg, "crun")
	if err := res.Error(); err != nil {
		t.Fatalf("run a pod with handler crun: %v", err)
	}
	if _, err := e.rt.images.PullImage(context.Background(), legacy.ImageSpec{Image: testBusybox}, nil, nil); err != nil {
		t.Fatalf("pull %s: %v", testBusybox, err)
	}
	id := e.createStart(sbID, ctrCfg("c", "sleep", "600"))

	for _, cid := range []string{sbID, id} {
		c, err := e.client.LoadContainer(ctx, cid)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := typeurl.UnmarshalAny(info.Runtime.Options)
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := opts.(*runcoptions.Options); !ok || o.GetBinaryName() != crun {
			t.Errorf("%s: runtime options %+v, want BinaryName %s", cid, opts, crun)
		}
		spec, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if spec.Annotations["example.com/pass"] != "yes" || spec.Annotations["other.io/keep-out"] != "" {
			t.Errorf("%s: annotations %v, want example.com/pass alone of the pod's", cid, spec.Annotations)
		}
		// The runc shim keeps its OCI runtime's state under /run/containerd/runc/<namespace>: crun
		// reads only the state crun wrote.
		root := filepath.Join("/run/containerd/runc", e.opts.Namespace)
		tctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(tctx, "crun", "--root", root, "state", cid).Output()
		cancel()
		var st struct{ Status string }
		if err != nil || json.Unmarshal(out, &st) != nil || st.Status != "running" {
			t.Errorf("%s: crun state: %s %v, want running", cid, out, err)
		}
		if _, err := os.Stat(filepath.Join(root, cid, "state.json")); err == nil {
			t.Errorf("%s: runc's state.json is there: runc ran it", cid)
		}
	}

	_, res = e.rt.RunPodSandbox(context.Background(), podCfg("unknown"), "gvisor")
	if err := res.Error(); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "configured: runc, crun") {
		t.Fatalf("unknown handler: %v, want InvalidArgument naming runc and crun", err)
	}
}

// TestPrivilegedWithoutHostDevices: a privileged container of a handler with
// privileged_without_host_devices sees none of the host's devices (a block device of this host
// stands for them), while one of the default handler sees them; both stay privileged otherwise.
func TestPrivilegedWithoutHostDevices(t *testing.T) {
	blocks, _ := os.ReadDir("/sys/block")
	dev := ""
	for _, b := range blocks {
		if _, err := os.Stat(filepath.Join("/dev", b.Name())); err == nil && !strings.HasPrefix(b.Name(), "loop") {
			dev = filepath.Join("/dev", b.Name())
			break
		}
	}
	if dev == "" {
		t.Skip("this host has no block device under /dev to stand for the host's devices")
	}
	e := newEnv(t, "")
	e.opts.RuntimeHandlers = append(DefaultRuntimeHandlers(), RuncHandler("nodev", ResolveRuncBinary("")))
	e.opts.HandlerSpecs = map[string]HandlerSpec{"nodev": {PrivilegedWithoutHostDevices: true}}
	e.rt = e.newRuntime()
	if _, err := e.rt.images.PullImage(context.Background(), legacy.ImageSpec{Image: testBusybox}, nil, nil); err != nil {
		t.Fatalf("pull %s: %v", testBusybox, err)
	}
	for _, tc := range []struct {
		handler string
		sees    bool
	}{{"", true}, {"nodev", false}} {
		cfg := podCfg("priv-" + tc.handler)
		cfg.LogDirectory = filepath.Join(e.dir, "logs", "priv-"+tc.handler)
		cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{Privileged: true}
		sbID, res := e.rt.RunPodSandbox(context.Background(), cfg, tc.handler)
		if err := res.Error(); err != nil {
			t.Fatalf("handler %q: run a privileged pod: %v", tc.handler, err)
		}
		c := ctrCfg("c", "sleep", "600")
		c.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{Privileged: true}
		id := e.createStart(sbID, c)
		res2, err := e.rt.ExecSync(context.Background(), id, []string{"sh", "-c", "test -e " + dev + " && echo yes || echo no; grep CapEff /proc/self/status"}, 10*time.Second)
		if err != nil {
			t.Fatalf("handler %q: exec: %v", tc.handler, err)
		}
		out := string(res2.Stdout)
		if got := strings.HasPrefix(out, "yes"); got != tc.sees {
			t.Errorf("handler %q: the privileged container sees %s: %v, want %v (%q)", tc.handler, dev, got, tc.sees, out)
		}
		// Still privileged: CAP_SYS_ADMIN (bit 21), which no default container has.
		_, hex, _ := strings.Cut(out, "CapEff:")
		if caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64); err != nil || caps&(1<<21) == 0 {
			t.Errorf("handler %q: not privileged: %q", tc.handler, out)
		}
	}
}
