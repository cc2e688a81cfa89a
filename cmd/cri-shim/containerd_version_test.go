package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/emptypb"
)

func TestParseContainerdVersion(t *testing.T) {
	for in, want := range map[string][3]int{
		"v2.2.9":        {2, 2, 9},
		"2.2.9+unknown": {2, 2, 9},
		"1.6.20~ds1":    {1, 6, 20},
		"2.0.0-rc.1":    {2, 0, 0},
		"v1.7.27":       {1, 7, 27},
	} {
		got, ok := parseVersion(in)
		if !ok || got != want {
			t.Errorf("parseVersion(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "dev", "2.2", "v2.x.1", "1.2.3.4", "-1.0.0"} {
		if got, ok := parseVersion(in); ok {
			t.Errorf("parseVersion(%q) = %v, want unreadable", in, got)
		}
	}
}

func TestContainerdVersionAllowed(t *testing.T) {
	hook := test.NewLocal(logrus.StandardLogger())
	logrus.SetOutput(io.Discard)
	t.Cleanup(func() { logrus.SetOutput(os.Stderr); hook.Reset() })
	for v, wantOK := range map[string]bool{
		"1.6.20~ds1":    false, // Debian 12's package
		"v1.7.27":       false,
		"1.99.99":       false,
		"2.0.0-rc.0":    true,
		"v2.0.0":        true,
		"2.2.9+unknown": true,
		"v3.0.0":        true,
		"main-abcdef":   true, // unreadable: let through with a warning
	} {
		err := containerdVersionAllowed(v, "/run/containerd/containerd.sock")
		if (err == nil) != wantOK {
			t.Errorf("%s: err = %v, want allowed %v", v, err, wantOK)
		}
		if err != nil && (!strings.Contains(err.Error(), v) || !strings.Contains(err.Error(), "needs containerd 2.0.0 or newer")) {
			t.Errorf("%s: the error does not say what was found and what is needed: %v", v, err)
		}
	}
	warned := false
	for _, e := range hook.AllEntries() {
		warned = warned || (e.Level == logrus.WarnLevel && e.Data["version"] == "main-abcdef")
	}
	if !warned {
		t.Error("an unreadable version was let through without a warning")
	}
}

// fakeVersionServer is a containerd that answers health checks and Version only.
type fakeVersionServer struct {
	versionapi.UnimplementedVersionServer
	version string
}

func (f fakeVersionServer) Version(context.Context, *emptypb.Empty) (*versionapi.VersionResponse, error) {
	return &versionapi.VersionResponse{Version: f.version, Revision: "fake"}, nil
}

// serveFakeContainerd serves a fakeVersionServer of version on a unix socket until the test ends.
func serveFakeContainerd(t *testing.T, version string) string {
	t.Helper()
	address := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.Listen("unix", address)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	versionapi.RegisterVersionServer(s, fakeVersionServer{version: version})
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return address
}

// TestConnectRefusesAnOldContainerd: in external mode, a system containerd older than cri-shim
// needs (Debian 12 ships 1.6) is refused at start with the version found and the one needed; a
// new enough one is connected to.
func TestConnectRefusesAnOldContainerd(t *testing.T) {
	for _, tc := range []struct {
		version string
		refused bool
	}{
		{"1.6.20~ds1", true},
		{"v1.7.27", true},
		{"v2.1.4", false},
	} {
		t.Run(tc.version, func(t *testing.T) {
			logrus.SetOutput(io.Discard)
			t.Cleanup(func() { logrus.SetOutput(os.Stderr) })
			cfg := config.Default()
			cfg.ContainerdMode = config.ModeExternal
			cfg.ContainerdAddress = serveFakeContainerd(t, tc.version)
			cfg.RootDir, cfg.StateDir = t.TempDir(), t.TempDir()
			b, err := connectContainerd(context.Background(), cfg, false, nil)
			if !tc.refused {
				if err != nil {
					t.Fatalf("containerd %s refused: %v", tc.version, err)
				}
				b.close()
				return
			}
			if err == nil {
				b.close()
				t.Fatalf("containerd %s accepted", tc.version)
			}
			if !strings.Contains(err.Error(), "is version "+tc.version) || !strings.Contains(err.Error(), "2.0.0 or newer") {
				t.Errorf("the refusal does not name the version found and needed: %v", err)
			}
		})
	}
}
