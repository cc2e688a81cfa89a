package server

import (
	"context"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func sandboxClient(t *testing.T) (runtime.RuntimeServiceClient, *legacytest.FakeRuntime) {
	t.Helper()
	fake := legacytest.NewFakeRuntime()
	return dial(t, Options{Backend: fake, Version: "test"}), fake
}

func podConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:    &runtime.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: "uid-" + name},
		Labels:      map[string]string{"app": name},
		Annotations: map[string]string{"a": "b"},
	}
}

func TestRunPodSandboxValidation(t *testing.T) {
	c, fake := sandboxClient(t)
	ctx := context.Background()
	cases := map[string]*runtime.RunPodSandboxRequest{
		"no config":     {},
		"no metadata":   {Config: &runtime.PodSandboxConfig{}},
		"no name":       {Config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Namespace: "ns", Uid: "u"}}},
		"no namespace":  {Config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "n", Uid: "u"}}},
		"no uid":        {Config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "n", Namespace: "ns"}}},
		"slash in name": {Config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "a/b", Namespace: "ns", Uid: "u"}}},
		"bad dns server": func() *runtime.RunPodSandboxRequest {
			cfg := podConfig("dns1")
			cfg.DnsConfig = &runtime.DNSConfig{Servers: []string{"not-an-ip"}}
			return &runtime.RunPodSandboxRequest{Config: cfg}
		}(),
		"bad dns option": func() *runtime.RunPodSandboxRequest {
			cfg := podConfig("dns2")
			cfg.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.0.0.1"}, Options: []string{"ndots:5\nnameserver 1.2.3.4"}}
			return &runtime.RunPodSandboxRequest{Config: cfg}
		}(),
		"bad dns search": func() *runtime.RunPodSandboxRequest {
			cfg := podConfig("dns3")
			cfg.DnsConfig = &runtime.DNSConfig{Searches: []string{"a b"}}
			return &runtime.RunPodSandboxRequest{Config: cfg}
		}(),
		"too many searches": func() *runtime.RunPodSandboxRequest {
			cfg := podConfig("dns4")
			cfg.DnsConfig = &runtime.DNSConfig{Searches: strings.Split(strings.Repeat("x,", 40)+"x", ",")}
			return &runtime.RunPodSandboxRequest{Config: cfg}
		}(),
		"bad port": func() *runtime.RunPodSandboxRequest {
			cfg := podConfig("port")
			cfg.PortMappings = []*runtime.PortMapping{{ContainerPort: 70000}}
			return &runtime.RunPodSandboxRequest{Config: cfg}
		}(),
		"bad host ip": func() *runtime.RunPodSandboxRequest {
			cfg := podConfig("hostip")
			cfg.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: 8080, HostIp: "nope"}}
			return &runtime.RunPodSandboxRequest{Config: cfg}
		}(),
		"bad bandwidth": func() *runtime.RunPodSandboxRequest {
			cfg := podConfig("bw")
			cfg.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "lots"}
			return &runtime.RunPodSandboxRequest{Config: cfg}
		}(),
		"unknown handler": {Config: podConfig("h"), RuntimeHandler: "kata"},
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.RunPodSandbox(ctx, req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
	if err := fake.AssertStartedPods(nil); err != nil {
		t.Fatalf("invalid requests reached the runtime: %v", err)
	}
}

func TestSandboxLifecycle(t *testing.T) {
	c, fake := sandboxClient(t)
	ctx := context.Background()
	cfg := podConfig("web")
	cfg.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"ns.svc.cluster.local"}, Options: []string{"ndots:5"}}
	run, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg, RuntimeHandler: "runc"})
	if err != nil {
		t.Fatal(err)
	}
	id := run.PodSandboxId

	// Same metadata again: AlreadyExists, the first stays.
	if _, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate: got %v, want AlreadyExists", err)
	}
	st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id[:12], Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Status
	if s.Id != id || s.State != runtime.PodSandboxState_SANDBOX_READY || s.Metadata.Name != "web" || s.Metadata.Uid != "uid-web" ||
		s.Labels["app"] != "web" || s.Annotations["a"] != "b" || s.Network.GetIp() == "" || s.CreatedAt == 0 || s.RuntimeHandler != "runc" {
		t.Fatalf("status: %v", s)
	}
	if s.Linux.GetNamespaces().GetOptions().GetNetwork() != runtime.NamespaceMode_POD {
		t.Fatalf("namespace options: %v", s.Linux)
	}
	if st.Info["info"] == "" {
		t.Fatalf("verbose info missing")
	}

	// A second pod, to filter.
	run2, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("db")})
	if err != nil {
		t.Fatal(err)
	}
	list := func(f *runtime.PodSandboxFilter) []string {
		t.Helper()
		resp, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range resp.Items {
			ids = append(ids, p.Id)
		}
		return ids
	}
	if got := list(nil); len(got) != 2 {
		t.Fatalf("list all: %v", got)
	}
	if got := list(&runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "db"}}); len(got) != 1 || got[0] != run2.PodSandboxId {
		t.Fatalf("list by label: %v", got)
	}
	if got := list(&runtime.PodSandboxFilter{Id: id}); len(got) != 1 || got[0] != id {
		t.Fatalf("list by id: %v", got)
	}

	// Stop twice, then NotReady.
	for i := 0; i < 2; i++ {
		if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("stop %d: %v", i, err)
		}
	}
	notReady := &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}}
	if got := list(notReady); len(got) != 1 || got[0] != id {
		t.Fatalf("list not ready: %v", got)
	}
	// Remove twice: both succeed; then it is gone.
	for i := 0; i < 2; i++ {
		if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("remove %d: %v", i, err)
		}
	}
	if _, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id}); status.Code(err) != codes.NotFound {
		t.Fatalf("status after remove: %v", err)
	}
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("stop after remove: %v", err)
	}
	// The name is free again.
	if _, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg}); err != nil {
		t.Fatalf("run after remove: %v", err)
	}
	if err := fake.AssertCalls([]string{"RunPodSandbox", "RunPodSandbox", "PodSandboxStatus", "RunPodSandbox",
		"ListPodSandbox", "ListPodSandbox", "ListPodSandbox", "StopPodSandbox", "StopPodSandbox", "ListPodSandbox",
		"RemovePodSandbox", "RemovePodSandbox", "PodSandboxStatus", "StopPodSandbox", "RunPodSandbox"}); err != nil {
		t.Fatal(err)
	}
}

func TestSandboxBadIDs(t *testing.T) {
	c, _ := sandboxClient(t)
	ctx := context.Background()
	if _, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("status without id: %v", err)
	}
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("stop without id: %v", err)
	}
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("remove without id: %v", err)
	}
	if _, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("status of unknown: %v", err)
	}
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: "nope"}); err != nil {
		t.Fatalf("remove of unknown: %v", err)
	}
	resp, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{Id: "nope"}})
	if err != nil || len(resp.Items) != 0 {
		t.Fatalf("list unknown id: %v %v", resp, err)
	}
}

func TestRunPodSandboxBackendErrors(t *testing.T) {
	c, fake := sandboxClient(t)
	fake.Err = legacy.ErrSetupNetwork
	_, err := c.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("x")})
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "SetupNetworkError") {
		t.Fatalf("got %v", err)
	}
}
