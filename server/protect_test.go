package server

import (
	"context"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ownerProtect protects what carries owner=standalone and belongs to one of the given pod UIDs
// (as the standalone manager's Protect does).
func ownerProtect(uids ...string) ProtectFunc {
	return func(uid string, labels map[string]string) string {
		if labels["owner"] != "standalone" {
			return ""
		}
		for _, u := range uids {
			if u == uid {
				return "it is owned by the standalone pods (manifest /m/" + uid + ".yaml)"
			}
		}
		return ""
	}
}

// runOwnedPod runs a sandbox with a running container; owned adds the owner label to both.
func runOwnedPod(t *testing.T, c runtime.RuntimeServiceClient, name string, owned bool) (sandboxID, containerID string) {
	t.Helper()
	ctx := context.Background()
	pcfg := podConfig(name)
	ccfg := containerConfig("c")
	ccfg.Labels[labelPodUID] = pcfg.Metadata.Uid
	if owned {
		pcfg.Labels["owner"] = "standalone"
		ccfg.Labels["owner"] = "standalone"
	}
	sb, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pcfg})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: ccfg, SandboxConfig: pcfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	return sb.PodSandboxId, cr.ContainerId
}

// mutations are the calls a protected pod refuses, in the order a kubelet would make them.
func mutations(c runtime.RuntimeServiceClient, sandboxID, containerID string) map[string]func() error {
	ctx := context.Background()
	return map[string]func() error{
		"UpdateContainerResources": func() error {
			_, err := c.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: containerID,
				Linux: &runtime.LinuxContainerResources{CpuShares: 256}})
			return err
		},
		"UpdatePodSandboxResources": func() error {
			_, err := c.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: sandboxID})
			return err
		},
		"StopContainer": func() error {
			_, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: containerID, Timeout: 1})
			return err
		},
		"RemoveContainer": func() error {
			_, err := c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: containerID})
			return err
		},
		"StopPodSandbox": func() error {
			_, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: sandboxID})
			return err
		},
		"RemovePodSandbox": func() error {
			_, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: sandboxID})
			return err
		},
	}
}

var mutationOrder = []string{"UpdateContainerResources", "UpdatePodSandboxResources", "StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox"}

// TestProtectedPodRefusesMutations: every call that would stop, remove or change a protected
// pod is FailedPrecondition with the reason, by full ID and by prefix, and changes nothing;
// listing, status, exec and log reopening stay open.
func TestProtectedPodRefusesMutations(t *testing.T) {
	fake := legacytest.NewFakeRuntime()
	c := dial(t, Options{Backend: fake, Version: "test", Protected: ownerProtect("uid-owned")})
	ctx := context.Background()
	sb, ctr := runOwnedPod(t, c, "owned", true)
	for _, ids := range [][2]string{{sb, ctr}, {sb[:10], ctr[:10]}} {
		calls := mutations(c, ids[0], ids[1])
		for _, name := range mutationOrder {
			err := calls[name]()
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("%s on a protected pod: %v, want FailedPrecondition", name, err)
			}
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "owned by the standalone pods (manifest /m/uid-owned.yaml)") ||
				!strings.HasPrefix(msg, "refusing to ") {
				t.Errorf("%s: message %q", name, msg)
			}
		}
	}
	st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("sandbox after the refused calls: %v %v", st, err)
	}
	cs, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctr})
	if err != nil || cs.Status.State != runtime.ContainerState_CONTAINER_RUNNING || cs.Status.GetResources().GetLinux().GetCpuShares() == 256 {
		t.Fatalf("container after the refused calls: %v %v", cs, err)
	}
	if l, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); err != nil || len(l.Items) != 1 {
		t.Fatalf("list sandboxes: %v %v", l, err)
	}
	if l, err := c.ListContainers(ctx, &runtime.ListContainersRequest{}); err != nil || len(l.Containers) != 1 {
		t.Fatalf("list containers: %v %v", l, err)
	}
	if _, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"true"}, Timeout: 5}); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if _, err := c.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: ctr}); err != nil {
		t.Fatalf("reopen log: %v", err)
	}
	// Unknown IDs keep their usual answers.
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: "nope"}); err != nil {
		t.Errorf("stop an unknown sandbox: %v", err)
	}
	if _, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: "nope"}); err != nil {
		t.Errorf("stop an unknown container: %v", err)
	}
}

// TestUnprotectedPodsStayMutable: with a guard set, pods without the owner label, and labelled
// pods the guard does not know (a kubelet's pod whose Pod copied the label), are stopped and
// removed as always; without a guard (static_pods_protected = false) so is an owned pod.
func TestUnprotectedPodsStayMutable(t *testing.T) {
	cases := []struct {
		name    string
		protect ProtectFunc
		owned   bool
	}{
		{"not labelled", ownerProtect("uid-p"), false},
		{"labelled, unknown uid", ownerProtect("uid-other"), true},
		{"protection off", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := legacytest.NewFakeRuntime()
			c := dial(t, Options{Backend: fake, Version: "test", Protected: tc.protect})
			sb, ctr := runOwnedPod(t, c, "p", tc.owned)
			calls := mutations(c, sb, ctr)
			for _, name := range mutationOrder {
				if err := calls[name](); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			if len(fake.FakeContainers()) != 0 {
				t.Errorf("containers left: %v", fake.FakeContainers())
			}
			if l, _ := fake.ListPodSandbox(context.Background(), nil); len(l) != 0 {
				t.Errorf("sandboxes left: %v", l)
			}
		})
	}
}

// TestProtectionOnlyCoversItsPod: a protected pod next to an ordinary one; the ordinary one is
// removed, the protected one stays.
func TestProtectionOnlyCoversItsPod(t *testing.T) {
	fake := legacytest.NewFakeRuntime()
	c := dial(t, Options{Backend: fake, Version: "test", Protected: ownerProtect("uid-owned")})
	ctx := context.Background()
	osb, octr := runOwnedPod(t, c, "owned", true)
	ksb, _ := runOwnedPod(t, c, "kubelets", false)
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: ksb}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: ksb}); err != nil {
		t.Fatal(err)
	}
	l, _ := fake.ListPodSandbox(ctx, nil)
	if len(l) != 1 || l[0].ID != osb {
		t.Fatalf("sandboxes %v, want only %s", l, osb)
	}
	st, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: octr})
	if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the protected container: %v %v", st, err)
	}
}
