package server

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func updateCIDR(c runtime.RuntimeServiceClient, cidr string) error {
	_, err := c.UpdateRuntimeConfig(context.Background(), &runtime.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: cidr}}})
	return err
}

func verboseInfo(t *testing.T, c runtime.RuntimeServiceClient) map[string]string {
	t.Helper()
	resp, err := c.Status(context.Background(), &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetInfo()
}

// TestUpdateRuntimeConfig: the kubelet's pod CIDRs are accepted (both families, host bits
// masked), reported by a verbose Status, replaced by the next call and cleared by an empty one;
// a malformed CIDR is InvalidArgument and keeps the previous ones.
func TestUpdateRuntimeConfig(t *testing.T) {
	c := dial(t, Options{Backend: legacytest.NewFakeRuntime(), Version: "test"})
	if got := verboseInfo(t, c)["podCIDRs"]; got != "[]" {
		t.Fatalf("podCIDRs before any update: %s", got)
	}
	if err := updateCIDR(c, "10.244.1.7/24, fd00:10:244:1::/64"); err != nil {
		t.Fatalf("UpdateRuntimeConfig: %v", err)
	}
	if got, want := verboseInfo(t, c)["podCIDRs"], `["10.244.1.0/24","fd00:10:244:1::/64"]`; got != want {
		t.Fatalf("podCIDRs %s, want %s", got, want)
	}
	for _, bad := range []string{"10.244.1.0", "10.244.1.0/33", "10.244.1.0/24,", "nonsense"} {
		err := updateCIDR(c, bad)
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%q: %v, want InvalidArgument", bad, err)
		}
	}
	if got, want := verboseInfo(t, c)["podCIDRs"], `["10.244.1.0/24","fd00:10:244:1::/64"]`; got != want {
		t.Fatalf("after refused updates: podCIDRs %s, want %s", got, want)
	}
	if err := updateCIDR(c, ""); err != nil {
		t.Fatal(err)
	}
	if got := verboseInfo(t, c)["podCIDRs"]; got != "[]" {
		t.Fatalf("after an empty update: %s", got)
	}
}

// TestVerboseStatusSandboxImage: the config in a verbose Status carries the pause image as
// "sandboxImage", which kubeadm reads (`crictl info -o go-template --template {{.config.sandboxImage}}`),
// beside the config's own keys.
func TestVerboseStatusSandboxImage(t *testing.T) {
	cfg := struct {
		SandboxImage string `json:"sandbox_image"`
		LogLevel     string `json:"log_level"`
	}{"registry.k8s.io/pause:3.10", "info"}
	c := dial(t, Options{Backend: legacytest.NewFakeRuntime(), Version: "test", Config: func() any { return cfg }, SandboxImage: cfg.SandboxImage})
	var got map[string]any
	if err := json.Unmarshal([]byte(verboseInfo(t, c)["config"]), &got); err != nil {
		t.Fatal(err)
	}
	if got["sandboxImage"] != "registry.k8s.io/pause:3.10" || got["sandbox_image"] != "registry.k8s.io/pause:3.10" || got["log_level"] != "info" {
		t.Fatalf("config info: %v", got)
	}
}

// RuntimeConfig reports the configured cgroup driver, which the kubelet adopts; no driver set is
// cgroupfs.
func TestRuntimeConfigReportsCgroupDriver(t *testing.T) {
	for d, want := range map[cgroupdriver.Driver]runtime.CgroupDriver{
		cgroupdriver.Systemd:  runtime.CgroupDriver_SYSTEMD,
		cgroupdriver.Cgroupfs: runtime.CgroupDriver_CGROUPFS,
		"":                    runtime.CgroupDriver_CGROUPFS,
	} {
		c := dial(t, Options{Backend: legacytest.NewFakeRuntime(), CgroupDriver: d})
		rc, err := c.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := rc.GetLinux().GetCgroupDriver(); got != want {
			t.Errorf("driver %q: RuntimeConfig says %v, want %v", d, got, want)
		}
	}
}

// TestStatusConfinement: a verbose Status carries the host's confinement, each entry as JSON.
func TestStatusConfinement(t *testing.T) {
	c := dial(t, Options{Backend: legacytest.NewFakeRuntime(), Version: "test", Confinement: func() map[string]any {
		return map[string]any{
			"apparmor": map[string]any{"enabled": false, "reason": "AppArmor not enabled on this host (x): containers get no profile"},
			"selinux":  map[string]any{"mode": "disabled"},
		}
	}})
	info := verboseInfo(t, c)
	if got, want := info["apparmor"], `{"enabled":false,"reason":"AppArmor not enabled on this host (x): containers get no profile"}`; got != want {
		t.Errorf("apparmor %s, want %s", got, want)
	}
	if got, want := info["selinux"], `{"mode":"disabled"}`; got != want {
		t.Errorf("selinux %s, want %s", got, want)
	}
	if info["config"] == "" {
		t.Errorf("config gone: %v", info)
	}
}
