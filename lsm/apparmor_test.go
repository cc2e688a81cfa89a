package lsm

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// fakeKernel is a host with AppArmor whose loader adds the profile to the kernel's list.
type fakeKernel struct {
	mu       sync.Mutex
	profiles string
	loads    []string
	loadErr  error
}

func (k *fakeKernel) host() AppArmorHost {
	return AppArmorHost{
		Supported: func() (bool, string) { return true, "" },
		Profiles: func() ([]byte, error) {
			k.mu.Lock()
			defer k.mu.Unlock()
			return []byte(k.profiles), nil
		},
		Generate: func(name string) (string, error) { return "profile " + name + " {}", nil },
		Load: func(_ context.Context, text string) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			k.loads = append(k.loads, text)
			if k.loadErr != nil {
				return k.loadErr
			}
			name := strings.Fields(text)[1]
			k.profiles += name + " (enforce)\n"
			return nil
		},
	}
}

func TestEnsureDefaultLoadsOnce(t *testing.T) {
	k := &fakeKernel{profiles: "docker-default (enforce)\n"}
	aa := NewAppArmor(k.host())
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name, err := aa.EnsureDefault(context.Background())
			if err != nil || name != DefaultProfileName {
				t.Errorf("EnsureDefault = %q, %v", name, err)
			}
		}()
	}
	wg.Wait()
	if len(k.loads) != 1 || k.loads[0] != "profile cri-shim.apparmor.d {}" {
		t.Fatalf("loads %q, want the default profile once", k.loads)
	}
}

func TestEnsureDefaultAlreadyLoaded(t *testing.T) {
	k := &fakeKernel{profiles: "cri-shim.apparmor.d (enforce)\n"}
	if _, err := NewAppArmor(k.host()).EnsureDefault(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(k.loads) != 0 {
		t.Fatalf("reloaded a loaded profile: %q", k.loads)
	}
}

func TestEnsureDefaultLoadFailure(t *testing.T) {
	k := &fakeKernel{loadErr: errors.New(`apparmor_parser -Kr /tmp/x: exit status 1: AppArmor parser error at line 3: syntax error`)}
	_, err := NewAppArmor(k.host()).EnsureDefault(context.Background())
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "AppArmor parser error at line 3") || !strings.Contains(err.Error(), DefaultProfileName) {
		t.Fatalf("err %v, want FailedPrecondition with the parser's output and the profile's name", err)
	}
	// A failed load is tried again by the next container.
	k.loadErr = nil
	if _, err := NewAppArmor(k.host()).EnsureDefault(context.Background()); err != nil || len(k.loads) != 2 {
		t.Fatalf("retry: %v, loads %d", err, len(k.loads))
	}
}

func TestEnsureDefaultProfilesUnreadable(t *testing.T) {
	h := (&fakeKernel{}).host()
	h.Profiles = func() ([]byte, error) { return nil, os.ErrPermission }
	if _, err := NewAppArmor(h).EnsureDefault(context.Background()); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("err %v, want FailedPrecondition", err)
	}
}

func TestProfileLoaded(t *testing.T) {
	k := &fakeKernel{profiles: "/usr/bin/man (enforce)\nmy-profile (complain)\nmy-profile-2 (enforce)\nlxc-container-default//&:ns:x (enforce)\n"}
	aa := NewAppArmor(k.host())
	for name, want := range map[string]bool{"my-profile": true, "my-profile-2": true, "/usr/bin/man": true, "my": false, "my-profile-3": false, "": false} {
		got, err := aa.ProfileLoaded(name)
		if err != nil || got != want {
			t.Errorf("ProfileLoaded(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
}

func TestAppArmorState(t *testing.T) {
	on := NewAppArmor((&fakeKernel{}).host())
	if s := on.State(); !s.Enabled || s.DefaultProfile != DefaultProfileName || s.Reason != "" {
		t.Errorf("enabled host: %+v", s)
	}
	off := NewAppArmor(AppArmorHost{Supported: func() (bool, string) { return false, "the kernel's AppArmor module is not enabled" }})
	s := off.State()
	if s.Enabled || s.DefaultProfile != "" || s.Reason != "AppArmor not enabled on this host (the kernel's AppArmor module is not enabled): containers get no profile" {
		t.Errorf("host without AppArmor: %+v", s)
	}
}

func TestRunParserBounded(t *testing.T) {
	start := time.Now()
	err := runParser(context.Background(), "/bin/sleep", 200*time.Millisecond, "30")
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
}

func TestRunParserOutputInError(t *testing.T) {
	err := runParser(context.Background(), "/bin/sh", 5*time.Second, "-c", "echo 'AppArmor parser error: bad rule' >&2; exit 1")
	if err == nil || !strings.Contains(err.Error(), "AppArmor parser error: bad rule") {
		t.Fatalf("err %v, want the parser's output", err)
	}
}
