package server

import (
	"context"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestStatusHandlerFeatures: each handler (and the default, "") advertises what its probe found.
func TestStatusHandlerFeatures(t *testing.T) {
	fake := legacytest.NewFakeRuntime()
	asked := map[string]int{}
	c := dial(t, Options{Backend: fake, Version: "test", RuntimeHandlers: []string{"runc", "old"},
		HandlerFeatures: func(_ context.Context, h string) legacy.HandlerFeatures {
			asked[h]++
			return legacy.HandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: h == "runc"}
		}})
	resp, err := c.Status(context.Background(), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]bool{}
	for _, h := range resp.GetRuntimeHandlers() {
		got[h.GetName()] = [2]bool{h.GetFeatures().GetRecursiveReadOnlyMounts(), h.GetFeatures().GetUserNamespaces()}
	}
	want := map[string][2]bool{"": {true, true}, "runc": {true, true}, "old": {true, false}}
	if len(got) != len(want) {
		t.Fatalf("handlers %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("handler %q: %v, want %v", k, got[k], v)
		}
	}
	if asked["runc"] == 0 || asked["old"] == 0 {
		t.Fatalf("probe not asked: %v", asked)
	}

	// Without a probe: no user namespaces, recursive read-only as configured.
	c = dial(t, Options{Backend: fake, Version: "test", RecursiveReadOnlyMounts: true})
	resp, err = c.Status(context.Background(), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range resp.GetRuntimeHandlers() {
		if !h.GetFeatures().GetRecursiveReadOnlyMounts() || h.GetFeatures().GetUserNamespaces() {
			t.Fatalf("%q: %+v", h.GetName(), h.GetFeatures())
		}
	}
}
