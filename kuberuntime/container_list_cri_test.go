package kuberuntime

import (
	"context"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestListCRIContainersCache(t *testing.T) {
	r := &ContainerdRuntime{}
	st := r.ctrs().store
	mk := func(id, sb, name string) *podContainer {
		c := &podContainer{meta: containerMetadata{ID: id, SandboxID: sb},
			config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}, Labels: map[string]string{"n": name}},
			state:  legacy.ContainerStateCreated}
		st.add(c)
		return c
	}
	a := mk("aaaa1", "sb1", "a")
	mk("bbbb2", "sb2", "b")
	built := 0
	conv := func(d *legacy.ContainerDetails) *runtime.Container {
		built++
		return &runtime.Container{Id: d.ID.ID, Annotations: map[string]string{"state": string(d.State)}}
	}
	ctx := context.Background()
	list, _, _ := r.ListCRIContainers(ctx, nil, conv)
	if len(list) != 2 || built != 2 {
		t.Fatalf("first list: %d entries, %d built", len(list), built)
	}
	again, _, _ := r.ListCRIContainers(ctx, nil, conv)
	if len(again) != 2 || built != 2 {
		t.Fatalf("relist built %d entries (want them cached)", built-2)
	}
	a.markRunning(1)
	running := legacy.ContainerStateRunning
	list, _, _ = r.ListCRIContainers(ctx, &legacy.ContainerFilter{State: &running}, conv)
	if len(list) != 1 || list[0].Id != "aaaa1" || list[0].Annotations["state"] != string(legacy.ContainerStateRunning) || built != 3 {
		t.Fatalf("after a state change: %+v, %d built", list, built)
	}
	for _, tc := range []struct {
		f    *legacy.ContainerFilter
		want string
	}{
		{&legacy.ContainerFilter{ID: "bbbb"}, "bbbb2"},
		{&legacy.ContainerFilter{SandboxID: "sb1"}, "aaaa1"},
		{&legacy.ContainerFilter{Labels: map[string]string{"n": "b"}}, "bbbb2"},
	} {
		list, _, _ := r.ListCRIContainers(ctx, tc.f, conv)
		if len(list) != 1 || list[0].Id != tc.want {
			t.Fatalf("filter %+v: %+v", tc.f, list)
		}
	}
	if list, _, _ := r.ListCRIContainers(ctx, &legacy.ContainerFilter{Labels: map[string]string{"n": "c"}}, conv); len(list) != 0 {
		t.Fatalf("label filter: %+v", list)
	}
}
