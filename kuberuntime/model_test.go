package kuberuntime

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerID(t *testing.T) {
	id := legacy.BuildContainerID("containerd", "abc")
	if id.String() != "containerd://abc" {
		t.Fatalf("String: %s", id)
	}
	if got := legacy.ParseContainerID("containerd://abc"); got != id {
		t.Fatalf("Parse: %+v", got)
	}
	for _, bad := range []string{"", "abc", "://abc", "containerd://"} {
		if got := legacy.ParseContainerID(bad); !got.IsEmpty() {
			t.Fatalf("Parse(%q) = %+v, want empty", bad, got)
		}
	}
	b, err := json.Marshal(struct{ ID legacy.ContainerID }{id})
	if err != nil || string(b) != `{"ID":"containerd://abc"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	var back struct{ ID legacy.ContainerID }
	if err := json.Unmarshal(b, &back); err != nil || back.ID != id {
		t.Fatalf("unmarshal: %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"ID":"nope"}`), &back); err == nil {
		t.Fatal("unmarshal of a malformed ID succeeded")
	}
	if err := json.Unmarshal([]byte(`{"ID":""}`), &back); err != nil || !back.ID.IsEmpty() {
		t.Fatalf("unmarshal empty: %+v %v", back, err)
	}
}

func TestPodFullName(t *testing.T) {
	if legacy.BuildPodFullName("web", "prod") != "web_prod" {
		t.Fatal(legacy.BuildPodFullName("web", "prod"))
	}
	n, ns, err := legacy.ParsePodFullName("web_prod")
	if err != nil || n != "web" || ns != "prod" {
		t.Fatalf("%s %s %v", n, ns, err)
	}
	for _, bad := range []string{"web", "a_b_c", "_prod", "web_", ""} {
		if _, _, err := legacy.ParsePodFullName(bad); err == nil {
			t.Fatalf("ParsePodFullName(%q) succeeded", bad)
		}
	}
	p := &legacy.Pod{Name: "web", Namespace: "prod"}
	if legacy.GetPodFullName(p) != "web_prod" {
		t.Fatal(legacy.GetPodFullName(p))
	}
}

func TestPodsFind(t *testing.T) {
	c1 := &legacy.Container{ID: legacy.BuildContainerID("t", "1"), Name: "a"}
	pods := legacy.Pods{
		{ID: "u1", Name: "a", Namespace: "ns", Containers: []*legacy.Container{c1}},
		{ID: "u2", Name: "b", Namespace: "ns"},
	}
	if p := pods.FindPodByID("u2"); p.Name != "b" {
		t.Fatalf("by id: %+v", p)
	}
	if p := pods.FindPodByFullName("a_ns"); p.ID != "u1" {
		t.Fatalf("by name: %+v", p)
	}
	if p := pods.FindPod("", "u1"); p.Name != "a" {
		t.Fatalf("find by uid: %+v", p)
	}
	if p := pods.FindPod("b_ns", "zzz"); p.ID != "u2" {
		t.Fatalf("find by name: %+v", p)
	}
	if p := pods.FindPodByID("nope"); !p.IsEmpty() {
		t.Fatalf("missing: %+v", p)
	}
	if pods[0].FindContainerByName("a") != c1 || pods[0].FindContainerByID(c1.ID) != c1 || pods[0].FindContainerByName("x") != nil {
		t.Fatal("FindContainer")
	}
}

func TestPodStatusHelpers(t *testing.T) {
	ps := &legacy.PodStatus{ID: "u", Name: "p", Namespace: "ns", ContainerStatuses: []*legacy.ContainerStatus{
		{ID: legacy.BuildContainerID("t", "2"), Name: "app", State: legacy.ContainerStateRunning},
		{ID: legacy.BuildContainerID("t", "1"), Name: "app", State: legacy.ContainerStateExited},
		{ID: legacy.BuildContainerID("t", "3"), Name: "side", State: legacy.ContainerStateExited},
	}, SandboxStatuses: []*legacy.SandboxStatus{{ID: "s1", State: legacy.SandboxStateReady}, {ID: "s0", State: legacy.SandboxStateNotReady}}}
	if cs := ps.FindContainerStatusByName("app"); cs.ID.ID != "2" {
		t.Fatalf("find: %+v", cs)
	}
	if r := ps.GetRunningContainerStatuses(); len(r) != 1 || r[0].Name != "app" {
		t.Fatalf("running: %+v", r)
	}
	pod := legacy.ConvertPodStatusToRunningPod("t", ps)
	if pod.ID != "u" || len(pod.Containers) != 1 || len(pod.Sandboxes) != 1 || pod.Sandboxes[0].ID.ID != "s1" {
		t.Fatalf("running pod: %+v", pod)
	}
}

func TestPodSyncResult(t *testing.T) {
	var r legacy.PodSyncResult
	r.AddSyncResult(legacy.NewSyncResult(legacy.StartContainer, "a"))
	if r.Error() != nil {
		t.Fatal(r.Error())
	}
	net := legacy.NewSyncResult(legacy.SetupNetwork, "p_ns")
	net.Fail(legacy.ErrSetupNetwork, "cni failed")
	r.AddSyncResult(net)
	err := r.Error()
	if !errors.Is(err, legacy.ErrSetupNetwork) || !strings.Contains(err.Error(), "cni failed") {
		t.Fatalf("error: %v", err)
	}
	var other legacy.PodSyncResult
	other.Fail(errdefs.ErrAlreadyExists)
	r.AddPodSyncResult(other)
	if err := r.Error(); !errors.Is(err, errdefs.ErrAlreadyExists) || !errors.Is(err, legacy.ErrSetupNetwork) {
		t.Fatalf("merged: %v", err)
	}
	if len(r.SyncResults) != 2 {
		t.Fatalf("results: %d", len(r.SyncResults))
	}
}

func TestHashContainer(t *testing.T) {
	base := func() *runtime.ContainerConfig {
		return &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "app"},
			Image:    &runtime.ImageSpec{Image: "busybox"},
			Command:  []string{"sh"},
			Labels:   map[string]string{"a": "1", "b": "2", "c": "3"},
		}
	}
	h := legacy.HashContainer(base())
	for i := 0; i < 20; i++ {
		if legacy.HashContainer(base()) != h {
			t.Fatal("hash not stable")
		}
	}
	changes := []func(*runtime.ContainerConfig){
		func(c *runtime.ContainerConfig) { c.Image.Image = "busybox:2" },
		func(c *runtime.ContainerConfig) { c.Command = []string{"bash"} },
		func(c *runtime.ContainerConfig) { c.Args = []string{"-c"} },
		func(c *runtime.ContainerConfig) { c.Labels["a"] = "x" },
		func(c *runtime.ContainerConfig) { c.Tty = true },
		func(c *runtime.ContainerConfig) { c.Annotations = map[string]string{"A": "B"} },
		func(c *runtime.ContainerConfig) { c.WorkingDir = "/x" },
	}
	for i, ch := range changes {
		c := base()
		ch(c)
		if legacy.HashContainer(c) == h {
			t.Fatalf("change %d did not change the hash", i)
		}
	}
}

func TestShouldContainerBeRestarted(t *testing.T) {
	c := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "app"}}
	status := func(st legacy.ContainerState, code int) *legacy.PodStatus {
		return &legacy.PodStatus{ContainerStatuses: []*legacy.ContainerStatus{
			{Name: "app", State: st, ExitCode: code},
			{Name: "app", State: legacy.ContainerStateExited, ExitCode: 1}, // older
		}}
	}
	cases := []struct {
		name   string
		ps     *legacy.PodStatus
		policy legacy.RestartPolicy
		want   bool
	}{
		{"no status", &legacy.PodStatus{}, legacy.RestartPolicyNever, true},
		{"nil status", nil, legacy.RestartPolicyNever, true},
		{"running", status(legacy.ContainerStateRunning, 0), legacy.RestartPolicyAlways, false},
		{"unknown", status(legacy.ContainerStateUnknown, 0), legacy.RestartPolicyNever, true},
		{"never", status(legacy.ContainerStateExited, 1), legacy.RestartPolicyNever, false},
		{"onfailure ok", status(legacy.ContainerStateExited, 0), legacy.RestartPolicyOnFailure, false},
		{"onfailure failed", status(legacy.ContainerStateExited, 2), legacy.RestartPolicyOnFailure, true},
		{"always", status(legacy.ContainerStateExited, 0), legacy.RestartPolicyAlways, true},
	}
	for _, tc := range cases {
		if got := legacy.ShouldContainerBeRestarted(c, tc.policy, tc.ps); got != tc.want {
			t.Errorf("%s: got %v want %v", tc.name, got, tc.want)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"1.2.3", "1.2.3", 0}, {"v2.2.9", "2.2.10", -1}, {"1.10", "1.9.9", 1}, {"1.2", "1.2.0", 0},
		{"1.2.0-rc.1", "1.2.0", -1}, {"1.2.0", "1.2.0-rc.1", 1}, {"1.2.0-rc.1", "1.2.0-rc.2", -1},
		{"2.2.9+build", "2.2.9", 0},
	}
	for _, tc := range cases {
		v, err := legacy.ParseVersion(tc.a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Compare(tc.b)
		if err != nil || got != tc.want {
			t.Errorf("%s vs %s: %d %v, want %d", tc.a, tc.b, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "x", "1.a", "-1"} {
		if _, err := legacy.ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
}

func TestExpand(t *testing.T) {
	envs := []legacy.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "two"}, {Name: "A", Value: "3"}}
	cmd, args := legacy.ExpandContainerCommandAndArgs([]string{"echo", "$(A)"}, []string{"$(B)-$(C)", "$$(A)", "$(", "cost $5"}, envs)
	if strings.Join(cmd, " ") != "echo 3" {
		t.Fatalf("cmd: %q", cmd)
	}
	want := []string{"two-$(C)", "$(A)", "$(", "cost $5"}
	for i := range want {
		if args[i] != want[i] {
			t.Fatalf("args[%d] = %q, want %q", i, args[i], want[i])
		}
	}
	if m := legacy.EnvVarsToMap(envs); m["A"] != "3" || len(m) != 2 {
		t.Fatalf("map: %v", m)
	}
}

func TestSandboxStoreNames(t *testing.T) {
	st := newSandboxStore()
	md := &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u", Attempt: 1}
	if err := st.reserve(nameKey(md), "a"); err != nil {
		t.Fatal(err)
	}
	if err := st.reserve(nameKey(md), "b"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second reserve: %v", err)
	}
	md2 := &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u", Attempt: 2}
	if err := st.reserve(nameKey(md2), "b"); err != nil {
		t.Fatalf("other attempt: %v", err)
	}
	st.release(nameKey(md), "b") // not the holder: no effect
	if err := st.reserve(nameKey(md), "c"); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("after foreign release: %v", err)
	}
	st.release(nameKey(md), "a")
	if err := st.reserve(nameKey(md), "c"); err != nil {
		t.Fatalf("after release: %v", err)
	}

	st.add(&podSandbox{meta: sandboxMetadata{ID: "abcdef"}, config: &runtime.PodSandboxConfig{Metadata: md2}})
	st.add(&podSandbox{meta: sandboxMetadata{ID: "abc123"}, config: &runtime.PodSandboxConfig{Metadata: md}})
	if _, err := st.get("abcd"); err != nil {
		t.Fatalf("unique prefix: %v", err)
	}
	if _, err := st.get("abc"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if _, err := st.get("zzz"); !errdefs.IsNotFound(err) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestSandboxFilter(t *testing.T) {
	ready := legacy.SandboxStateReady
	s := &legacy.SandboxStatus{ID: "abcdef", State: legacy.SandboxStateReady, Labels: map[string]string{"a": "1", "b": "2"}}
	cases := []struct {
		f    *legacy.SandboxFilter
		want bool
	}{
		{nil, true},
		{&legacy.SandboxFilter{ID: "abc"}, true},
		{&legacy.SandboxFilter{ID: "abd"}, false},
		{&legacy.SandboxFilter{State: &ready}, true},
		{&legacy.SandboxFilter{Labels: map[string]string{"a": "1"}}, true},
		{&legacy.SandboxFilter{Labels: map[string]string{"a": "2"}}, false},
		{&legacy.SandboxFilter{Labels: map[string]string{"c": ""}}, false},
	}
	for i, tc := range cases {
		if got := tc.f.Match(s); got != tc.want {
			t.Errorf("case %d: got %v", i, got)
		}
	}
}
