//go:build integration

package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestDaemonAdvertisesUserNamespaces: with the runc hack/setup.sh builds (the default), Status says
// the runc handler runs user namespaces; with runc_binary set to Debian's runc 1.1 it does not.
func TestDaemonAdvertisesUserNamespaces(t *testing.T) {
	const built, debian = "/var/cache/cri-shim/bin/runc", "/usr/sbin/runc"
	for _, p := range []string{built, debian} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v (run hack/setup.sh)", p, err)
		}
	}
	bin := buildDaemon(t)
	for _, tc := range []struct {
		name   string
		args   []string
		userns bool
	}{
		{"default runc", nil, true},
		{"debian runc", []string{"--runc-binary", debian}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("/tmp", "crishim-it-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { testutil.UnmountAll(dir); os.RemoveAll(dir) }) // the shared pause rootfs stays mounted by design
			conf := filepath.Join(dir, "net.d")
			os.MkdirAll(conf, 0o755)
			d := startDaemon(t, bin, dir, append([]string{"--cni-conf-dir", conf}, tc.args...)...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := criClient(t, d.socket).Status(ctx, &runtime.StatusRequest{})
			if err != nil {
				t.Fatal(err)
			}
			names := map[string]bool{}
			for _, h := range s.GetRuntimeHandlers() {
				names[h.GetName()] = true
				if h.GetFeatures().GetUserNamespaces() != tc.userns {
					t.Errorf("handler %q: user namespaces %v, want %v", h.GetName(), h.GetFeatures().GetUserNamespaces(), tc.userns)
				}
				if !h.GetFeatures().GetRecursiveReadOnlyMounts() {
					t.Errorf("handler %q: no recursive read-only mounts", h.GetName())
				}
			}
			if !names[""] || !names["runc"] {
				t.Fatalf("handlers %v", names)
			}
		})
	}
}
