package kuberuntime

import (
	"context"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestListCRISandboxesCache(t *testing.T) {
	r := &ContainerdRuntime{sandboxes: newSandboxStore()}
	mk := func(id, name string, at int64) *podSandbox {
		sb := &podSandbox{meta: sandboxMetadata{ID: id, CreatedAt: time.Unix(at, 0)},
			config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: name, Uid: name},
				Labels: map[string]string{"n": name}},
			state: legacy.SandboxStateReady}
		r.sandboxes.add(sb)
		return sb
	}
	a := mk("aaaa1", "a", 1)
	mk("bbbb2", "b", 2)
	built := 0
	conv := func(st *legacy.SandboxStatus) *runtime.PodSandbox {
		built++
		state := runtime.PodSandboxState_SANDBOX_NOTREADY
		if st.State == legacy.SandboxStateReady {
			state = runtime.PodSandboxState_SANDBOX_READY
		}
		return &runtime.PodSandbox{Id: st.ID, State: state, Labels: st.Labels}
	}
	ctx := context.Background()
	list, wire, _ := r.ListCRISandboxes(ctx, nil, conv)
	if len(list) != 2 || built != 2 || len(wire) != 2 || list[0].Id != "bbbb2" {
		t.Fatalf("first list: %v, %d built, %d encoded", list, built, len(wire))
	}
	for i, e := range list {
		var got runtime.PodSandbox
		if err := proto.Unmarshal(wire[i], &got); err != nil || !proto.Equal(&got, e) {
			t.Fatalf("entry %d encoded as %v (%v), want %v", i, &got, err, e)
		}
	}
	if again, _, _ := r.ListCRISandboxes(ctx, nil, conv); len(again) != 2 || built != 2 || again[1] != list[1] {
		t.Fatalf("relist built %d entries (want them cached)", built-2)
	}
	a.setStopped(time.Now())
	notReady := legacy.SandboxStateNotReady
	got, _, _ := r.ListCRISandboxes(ctx, &legacy.SandboxFilter{State: &notReady}, conv)
	if len(got) != 1 || got[0].Id != "aaaa1" || got[0].State != runtime.PodSandboxState_SANDBOX_NOTREADY || built != 3 {
		t.Fatalf("after stop: %v, %d built", got, built)
	}
	if got, _, _ := r.ListCRISandboxes(ctx, &legacy.SandboxFilter{ID: "bbbb", Labels: map[string]string{"n": "b"}}, conv); len(got) != 1 || got[0].Id != "bbbb2" {
		t.Fatalf("by id and label: %v", got)
	}
	if got, _, _ := r.ListCRISandboxes(ctx, &legacy.SandboxFilter{Labels: map[string]string{"n": "zz"}}, conv); len(got) != 0 {
		t.Fatalf("label mismatch listed %v", got)
	}
	if got, _, _ := r.ListCRISandboxes(ctx, &legacy.SandboxFilter{ID: "nope"}, conv); len(got) != 0 {
		t.Fatalf("unknown id listed %v", got)
	}
}
