package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRunPodSandboxRefusesCNIArgsSeparators: a sandbox name, namespace or UID with ';' or '='
// would reach CNI_ARGS ("K8S_POD_NAME=a;IP=10.0.0.5" asks host-local for that address):
// InvalidArgument before the runtime sees it. Kubernetes names and UIDs never contain them.
func TestRunPodSandboxRefusesCNIArgsSeparators(t *testing.T) {
	c, fake := sandboxClient(t)
	ctx := context.Background()
	for name, mut := range map[string]func(md *runtime.PodSandboxMetadata){
		"name ;IP=":      func(md *runtime.PodSandboxMetadata) { md.Name = "web;IP=10.0.0.5" },
		"name =":         func(md *runtime.PodSandboxMetadata) { md.Name = "a=b" },
		"namespace ;":    func(md *runtime.PodSandboxMetadata) { md.Namespace = "ns;IgnoreUnknown=1" },
		"namespace =":    func(md *runtime.PodSandboxMetadata) { md.Namespace = "ns=x" },
		"uid ;IP=":       func(md *runtime.PodSandboxMetadata) { md.Uid = "0f0e;IP=10.0.0.9" },
		"uid =":          func(md *runtime.PodSandboxMetadata) { md.Uid = "u=1" },
		"uid ; at start": func(md *runtime.PodSandboxMetadata) { md.Uid = ";" },
	} {
		cfg := podConfig("cniargs")
		mut(cfg.Metadata)
		_, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: got %v, want InvalidArgument", name, err)
		}
	}
	if err := fake.AssertStartedPods(nil); err != nil {
		t.Fatalf("invalid sandboxes reached the runtime: %v", err)
	}
	// What Kubernetes makes still runs.
	cfg := podConfig("ok")
	cfg.Metadata.Name, cfg.Metadata.Namespace, cfg.Metadata.Uid = "web-0.x", "kube-system", "5f0c2a54-1b5e-4c2d-9a57-3f2b6a0e8d11"
	if _, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
}

// TestReservedOwnerLabel: the standalone pods' owner label is the daemon's own: a CRI client (a
// kubelet copying a Pod's labels, crictl) may not put it on a sandbox or a container, since the
// manager protects what carries it from the kubelet and removes what carries it and names no
// manifest. RunPodSandbox, CreateContainer and RestorePod refuse it with InvalidArgument; other
// io.cri-shim labels and the owner key's look-alikes pass.
func TestReservedOwnerLabel(t *testing.T) {
	c, fake := sandboxClient(t)
	ctx := context.Background()
	for _, v := range []string{"standalone", "", "kubelet"} {
		cfg := podConfig("owned")
		cfg.Labels[OwnerLabel] = v
		_, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("RunPodSandbox with %s=%q: got %v, want InvalidArgument", OwnerLabel, v, err)
		}
	}
	if err := fake.AssertStartedPods(nil); err != nil {
		t.Fatalf("labelled sandboxes reached the runtime: %v", err)
	}
	cfg := podConfig("plain")
	cfg.Labels["io.cri-shim.owner.x"] = "standalone"
	cfg.Labels["io.cri-shim.other"] = "x"
	sb, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ccfg := containerConfig("c")
	ccfg.Labels[OwnerLabel] = "standalone"
	ccfg.Labels[labelPodUID] = cfg.Metadata.Uid
	_, err = c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: ccfg, SandboxConfig: cfg})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("CreateContainer with the owner label: got %v, want InvalidArgument", err)
	}
	if cs, _ := c.ListContainers(ctx, &runtime.ListContainersRequest{}); len(cs.GetContainers()) != 0 {
		t.Errorf("a labelled container was made: %v", cs.GetContainers())
	}
	rcfg := podConfig("restored")
	rcfg.Labels[OwnerLabel] = "standalone"
	_, err = c.RestorePod(ctx, &runtime.RestorePodRequest{CheckpointPath: "/nonexistent.tar", Config: rcfg,
		ContainerConfigs: []*runtime.ContainerConfig{containerConfig("c")}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("RestorePod with the owner label: got %v, want InvalidArgument", err)
	}
	rcfg = podConfig("restored2")
	rc := containerConfig("c")
	rc.Labels[OwnerLabel] = "standalone"
	_, err = c.RestorePod(ctx, &runtime.RestorePodRequest{CheckpointPath: "/nonexistent.tar", Config: rcfg,
		ContainerConfigs: []*runtime.ContainerConfig{rc}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("RestorePod with a labelled container: got %v, want InvalidArgument", err)
	}
}
