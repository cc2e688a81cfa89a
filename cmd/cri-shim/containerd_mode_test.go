package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

var errNoContainerd = errors.New("dial unix: no such file or directory")

// fakeContainerd answers for the containerds at the addresses it knows, with their containers.
type fakeContainerd struct {
	containers map[string][]string // address -> container IDs
	live       []string            // live tasks in the managed containerd's state dir
	liveErr    error
}

func (f fakeContainerd) view() containerdView {
	return containerdView{
		probe: func(_ context.Context, address string) error {
			if _, ok := f.containers[address]; !ok {
				return errNoContainerd
			}
			return nil
		},
		containers: func(_ context.Context, address, _ string) ([]string, error) {
			ids, ok := f.containers[address]
			if !ok {
				return nil, errNoContainerd
			}
			return ids, nil
		},
		liveTasks: func(string, string) ([]string, error) { return f.live, f.liveErr },
	}
}

// TestCheckModeRefusesWhileTheOtherHoldsPods: each mode starts when the other mode's containerd
// holds nothing of cri-shim's namespace (or does not answer), and refuses, saying what to do, when it
// holds containers.
func TestCheckModeRefusesWhileTheOtherHoldsPods(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = "/run/test-cri-shim"
	system, managedAddr := cfg.ContainerdAddress, cfg.ManagedContainerdAddress()
	for _, tc := range []struct {
		name, mode string
		fake       fakeContainerd
		want       string // "" to start
	}{
		{"external, nothing managed", config.ModeExternal, fakeContainerd{}, ""},
		{"external, managed containerd serving empty", config.ModeExternal, fakeContainerd{containers: map[string][]string{managedAddr: nil}}, ""},
		{"external, managed containerd serving pods", config.ModeExternal,
			fakeContainerd{containers: map[string][]string{managedAddr: {"0123456789abcdef", "b", "c", "d"}}},
			`still serves at /run/test-cri-shim/containerd/containerd.sock with 4 containers of namespace "cri-shim" (0123456789ab, b, c, ...)`},
		{"external, managed shims alive", config.ModeExternal, fakeContainerd{live: []string{"abc"}},
			`1 containers of namespace "cri-shim" started by the managed containerd of an earlier run still run (abc, bundles under /run/test-cri-shim/containerd)`},
		{"external, state unreadable", config.ModeExternal, fakeContainerd{liveErr: os.ErrPermission}, "look for the managed containerd's tasks"},
		{"managed, no system containerd", config.ModeManaged, fakeContainerd{live: []string{"abc"}}, ""},
		{"managed, system containerd without our pods", config.ModeManaged, fakeContainerd{containers: map[string][]string{system: nil}}, ""},
		{"managed, system containerd with our pods", config.ModeManaged, fakeContainerd{containers: map[string][]string{system: {"x"}}},
			`containerd_mode is managed, but the containerd at /run/containerd/containerd.sock (containerd_address) holds 1 containers of namespace "cri-shim" (x)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.ContainerdMode = tc.mode
			err := checkMode(context.Background(), c, tc.fake.view())
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			// A refusal says what to do.
			if err != nil && tc.want != "" && !strings.Contains(err.Error(), "containerd_mode = ") && !errors.Is(err, os.ErrPermission) {
				t.Fatalf("refusal without a remedy: %v", err)
			}
		})
	}
}

// TestWaitExternalRetries: the wait for an external containerd logs every failed attempt with its
// error and returns once the containerd answers; it gives up only when its context ends.
func TestWaitExternalRetries(t *testing.T) {
	hook := test.NewGlobal()
	defer hook.Reset()
	fails := 3
	probe := func(context.Context, string) error {
		if fails > 0 {
			fails--
			return errNoContainerd
		}
		return nil
	}
	r := retry{first: time.Millisecond, max: 4 * time.Millisecond}
	if err := waitExternal(context.Background(), "/run/containerd/containerd.sock", probe, r, nil); err != nil {
		t.Fatal(err)
	}
	var attempts int
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data[logrus.ErrorKey] == errNoContainerd {
			attempts++
		}
	}
	if attempts != 3 {
		t.Fatalf("%d attempts logged with their error, want 3", attempts)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := waitExternal(ctx, "/run/x.sock", func(context.Context, string) error { return errNoContainerd }, r, nil)
	if err == nil || !strings.Contains(err.Error(), "/run/x.sock") || !errors.Is(err, errNoContainerd) {
		t.Fatalf("gave up with %v", err)
	}
}

// TestExternalModeNeverStartsContainerd: in external mode, with nothing at containerd_address, the
// daemon waits and no managed containerd is started (its dirs are never made).
func TestExternalModeNeverStartsContainerd(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.ContainerdMode = config.ModeExternal
	cfg.ContainerdAddress = filepath.Join(dir, "absent.sock")
	cfg.RootDir, cfg.StateDir = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	b, err := connectContainerd(ctx, cfg, true, nil)
	if err == nil {
		b.close()
		t.Fatal("connected with nothing at containerd_address")
	}
	if time.Since(start) < 600*time.Millisecond || !strings.Contains(err.Error(), cfg.ContainerdAddress) {
		t.Fatalf("after %s: %v; want a wait until the context ends, naming the address", time.Since(start), err)
	}
	for _, p := range []string{filepath.Join(cfg.RootDir, "containerd"), filepath.Join(cfg.StateDir, "containerd")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v; a managed containerd was set up", p, err)
		}
	}
	// Without waiting (the commands): one attempt.
	start = time.Now()
	if _, err := connectContainerd(context.Background(), cfg, false, nil); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("one attempt: %v after %s", err, time.Since(start))
	}
}
