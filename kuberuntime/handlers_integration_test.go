//go:build integration

package kuberuntime

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/legacy"
)

// TestCrunHandler: a pod naming the handler crun runs its sandbox and containers under crun (the
// shim is given crun as its binary, and crun's state of the container says running), with the
// handler's passed-through pod annotations; a pod naming an unknown handler is InvalidArgument.
func TestCrunHandler(t *testing.T) {
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
