package containerspec

import (
	"testing"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCheckMountMappings(t *testing.T) {
	idmap := func(c, h, l uint32) *runtime.IDMapping {
		return &runtime.IDMapping{ContainerId: c, HostId: h, Length: l}
	}
	m := []*runtime.IDMapping{idmap(0, 100000, 65536)}
	for _, tc := range []struct {
		mount  *runtime.Mount
		userns bool
		ok     bool
	}{
		{&runtime.Mount{}, false, true},
		{&runtime.Mount{UidMappings: m, GidMappings: m}, true, true},
		{&runtime.Mount{UidMappings: m, GidMappings: m}, false, false},
		{&runtime.Mount{UidMappings: m}, true, false},
		{&runtime.Mount{UidMappings: m, GidMappings: []*runtime.IDMapping{idmap(0, 1, 0)}}, true, false},
		{&runtime.Mount{UidMappings: []*runtime.IDMapping{idmap(0, 4294967295, 2)}, GidMappings: m}, true, false},
		{&runtime.Mount{UidMappings: []*runtime.IDMapping{nil}, GidMappings: m}, true, false},
	} {
		err := checkMountMappings(tc.mount, tc.userns)
		if (err == nil) != tc.ok || err != nil && !errdefs.IsInvalidArgument(err) {
			t.Errorf("%v userns=%v: %v", tc.mount, tc.userns, err)
		}
	}
}
