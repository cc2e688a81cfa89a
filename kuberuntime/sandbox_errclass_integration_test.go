//go:build integration

package kuberuntime

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A config the request validation lets through but the pause container's spec refuses (an unknown
// seccomp profile) fails RunPodSandbox with the class InvalidArgument, not a class-less message,
// and leaves no container behind.
func TestSandboxSpecRefusalIsInvalidArgument(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	cfg := podCfg("badseccomp")
	cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{SeccompProfilePath: "no-such-profile"}
	if err := legacy.ValidateSandboxConfig(cfg); err != nil {
		t.Fatalf("the config must pass the request validation: %v", err)
	}
	id, res := e.rt.RunPodSandbox(ctx, cfg, "")
	err := res.Error()
	if err == nil || id != "" {
		t.Fatalf("run with an unknown seccomp profile: id %q, %v", id, err)
	}
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("%v: not of class InvalidArgument", err)
	}
	if !errors.Is(err, legacy.ErrRunContainer) {
		t.Errorf("%v: does not wrap ErrRunContainer", err)
	}
	cs, lerr := e.client.Containers(namespaces.WithNamespace(ctx, "crishim-test"))
	if lerr != nil || len(cs) != 0 {
		t.Fatalf("containers left: %d %v", len(cs), lerr)
	}
	// The name was released: the pod runs once its config is fixed.
	cfg.Linux.SecurityContext = nil
	e.run(cfg)
}
