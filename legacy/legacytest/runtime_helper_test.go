package legacytest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeHelper is a RuntimeHelper whose answers the test sets.
type fakeHelper struct {
	dns       *runtime.DNSConfig
	dnsErr    error
	configErr error
	// edit changes the generated config (a copy of the spec's).
	edit      func(*runtime.ContainerConfig)
	generated []string
}

func (h *fakeHelper) GenerateRunContainerOptions(_ context.Context, _ *legacy.PodSpec, c *legacy.ContainerSpec) (*runtime.ContainerConfig, error) {
	h.generated = append(h.generated, c.Config.GetMetadata().GetName())
	if h.configErr != nil {
		return nil, h.configErr
	}
	cfg := proto.Clone(c.Config).(*runtime.ContainerConfig)
	if h.edit != nil {
		h.edit(cfg)
	}
	return cfg, nil
}

func (h *fakeHelper) GetClusterDNS(context.Context, *legacy.PodSpec) (*runtime.DNSConfig, error) {
	return h.dns, h.dnsErr
}

// TestSyncPodCreatesTheHelpersConfig: the container is created with the config the helper
// generates (with SyncPod's attempt, log path and labels on it), not the spec's.
func TestSyncPodCreatesTheHelpersConfig(t *testing.T) {
	fake := NewFakeRuntime()
	s := legacy.NewPodSyncer(fake, nil, nil, nil)
	h := &fakeHelper{edit: func(c *runtime.ContainerConfig) {
		c.Mounts = append(c.Mounts, &runtime.Mount{ContainerPath: "/prepared", HostPath: "/host/prepared"})
	}}
	s.Helper = h
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	c := runningOf(fake, "a")
	if c == nil {
		t.Fatalf("not running; generated for %v", h.generated)
	}
	if len(c.Config.Mounts) != 1 || c.Config.Mounts[0].HostPath != "/host/prepared" {
		t.Errorf("created with mounts %v, want the helper's", c.Config.Mounts)
	}
	if c.Config.Labels[legacy.LabelSpecHash] != pod.Containers[0].SpecHashLabel() || c.Config.Labels[legacy.LabelContainerType] != "regular" ||
		c.Config.LogPath != "a/0.log" {
		t.Errorf("SyncPod's fields: labels %v, log path %q", c.Config.Labels, c.Config.LogPath)
	}
	if len(pod.Containers[0].Config.Mounts) != 0 || pod.Containers[0].Config.Labels != nil {
		t.Errorf("the spec was changed: %v", pod.Containers[0].Config)
	}
	// The spec hash is the spec's: the helper's additions do not replace the container.
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	if len(fake.CreatedContainers) != 1 {
		t.Errorf("created %v, want a once", fake.CreatedContainers)
	}
}

// TestSyncPodHelperConfigError: a config the helper cannot generate fails the container's start
// with ErrCreateContainerConfig (its cause kept), a Warning "Failed" "Error: ..." event, and
// nothing created.
func TestSyncPodHelperConfigError(t *testing.T) {
	fake := NewFakeRuntime()
	rec := legacy.NewMemoryRecorder(0, nil)
	s := legacy.NewPodSyncer(fake, nil, rec, nil)
	cause := errors.New("subPath sub: no such volume")
	s.Helper = &fakeHelper{configErr: cause}
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	res := syncOnce(t, s, fake, pod)
	if err := res.Error(); !errors.Is(err, legacy.ErrCreateContainerConfig) || !errors.Is(err, cause) {
		t.Fatalf("sync: %v, want ErrCreateContainerConfig wrapping the cause", err)
	}
	var step *legacy.SyncResult
	for _, r := range res.SyncResults {
		if r.Action == legacy.StartContainer {
			step = r
		}
	}
	if step == nil || step.Error != legacy.ErrCreateContainerConfig || step.Target != "a" {
		t.Fatalf("StartContainer step %+v", step)
	}
	if len(fake.CreatedContainers) != 0 {
		t.Errorf("created %v", fake.CreatedContainers)
	}
	found := false
	for _, e := range rec.Events() {
		found = found || (e.Type == legacy.EventTypeWarning && e.Reason == legacy.FailedToCreateContainer && strings.HasPrefix(e.Message, "Error: ") && strings.Contains(e.Message, cause.Error()))
	}
	if !found {
		t.Errorf("no Warning Failed event with the cause: %v", rec.Events())
	}
}

// TestSyncPodHelperDNS: the sandbox is created with the helper's DNS and carries the hash of the
// config with it; the same answer keeps the sandbox, another re-creates it.
func TestSyncPodHelperDNS(t *testing.T) {
	fake := NewFakeRuntime()
	s := legacy.NewPodSyncer(fake, nil, nil, nil)
	h := &fakeHelper{dns: &runtime.DNSConfig{Servers: []string{"10.0.0.1"}, Searches: []string{"example.org"}, Options: []string{"ndots:2"}}}
	s.Helper = h
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	if len(fake.StartedSandboxes) != 1 {
		t.Fatalf("sandboxes %v", fake.StartedSandboxes)
	}
	first := fake.Sandboxes[fake.StartedSandboxes[0]]
	if !proto.Equal(first.Config.GetDnsConfig(), h.dns) {
		t.Errorf("sandbox DNS %v, want the helper's %v", first.Config.GetDnsConfig(), h.dns)
	}
	if pod.Sandbox.DnsConfig != nil {
		t.Error("the spec's sandbox config was changed")
	}
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	if len(fake.StartedSandboxes) != 1 {
		t.Fatalf("the same DNS re-created the sandbox: %v", fake.StartedSandboxes)
	}
	// What the helper derives from the host changes (its resolv.conf was rewritten): the running
	// sandbox stays, as under the kubelet.
	h.dns = &runtime.DNSConfig{Servers: []string{"10.0.0.2"}}
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	if len(fake.StartedSandboxes) != 1 {
		t.Fatalf("a change of the helper's DNS replaced the running sandbox: %v", fake.StartedSandboxes)
	}
	// The spec's DNS changes: a new sandbox, with the helper's DNS of now.
	pod.Sandbox.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.0.0.3"}}
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	if len(fake.StartedSandboxes) != 2 {
		t.Fatalf("a changed spec DNS kept the sandbox: %v", fake.StartedSandboxes)
	}
	second := fake.Sandboxes[fake.StartedSandboxes[1]]
	if second.Attempt != 1 || !proto.Equal(second.Config.GetDnsConfig(), h.dns) ||
		second.Labels[legacy.LabelSpecHash] != legacy.HashString(legacy.SandboxSpecHash(pod.Sandbox)) {
		t.Errorf("new sandbox attempt %d DNS %v labels %v", second.Attempt, second.Config.GetDnsConfig(), second.Labels)
	}
}

// TestSyncPodHelperDNSError: a DNS config the helper cannot give fails the sandbox's creation
// step (CreatePodSandboxError) with a FailedCreatePodSandBox event; nothing is created.
func TestSyncPodHelperDNSError(t *testing.T) {
	fake := NewFakeRuntime()
	rec := legacy.NewMemoryRecorder(0, nil)
	s := legacy.NewPodSyncer(fake, nil, rec, nil)
	cause := errors.New("read resolv.conf: permission denied")
	s.Helper = &fakeHelper{dnsErr: cause}
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	if err := syncOnce(t, s, fake, pod).Error(); !errors.Is(err, legacy.ErrCreatePodSandbox) || !errors.Is(err, cause) {
		t.Fatalf("sync: %v", err)
	}
	if len(fake.StartedSandboxes) != 0 || len(fake.CreatedContainers) != 0 {
		t.Errorf("created sandboxes %v containers %v", fake.StartedSandboxes, fake.CreatedContainers)
	}
	found := false
	for _, e := range rec.Events() {
		found = found || (e.Type == legacy.EventTypeWarning && e.Reason == legacy.FailedCreatePodSandBox)
	}
	if !found {
		t.Errorf("no FailedCreatePodSandBox event: %v", rec.Events())
	}
}

// TestSyncPodWithoutHelper: without a helper the spec's configs are created as they are: the
// sandbox keeps the spec's DNS and the hash of the spec's config.
func TestSyncPodWithoutHelper(t *testing.T) {
	fake := NewFakeRuntime()
	s := legacy.NewPodSyncer(fake, nil, nil, nil)
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	pod.Sandbox.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.0.0.9"}}
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	sb := fake.Sandboxes[fake.StartedSandboxes[0]]
	if !proto.Equal(sb.Config.GetDnsConfig(), pod.Sandbox.DnsConfig) || sb.Labels[legacy.LabelSpecHash] != legacy.HashString(legacy.SandboxSpecHash(pod.Sandbox)) {
		t.Errorf("sandbox DNS %v labels %v", sb.Config.GetDnsConfig(), sb.Labels)
	}
	c := runningOf(fake, "a")
	if c == nil || strings.Join(c.Config.Command, " ") != "sleep 1000" {
		t.Errorf("container %+v", c)
	}
}
