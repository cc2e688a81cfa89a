package lsm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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

// TestDefaultProfileIsContainerds compares the profile the runtime would load on this host with
// containerd's template output for a host like it (testdata/README says where each came from).
func TestDefaultProfileIsContainerds(t *testing.T) {
	golden := goldenFor(t)
	var loaded string
	h := (&fakeKernel{}).host()
	h.Generate = nil // the real generator: containerd's apparmor.DumpDefaultProfile
	h.Load = func(_ context.Context, text string) error { loaded = text; return nil }
	if _, err := NewAppArmor(h).EnsureDefault(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", golden))
	if err != nil {
		t.Fatal(err)
	}
	if loaded != string(want) {
		t.Fatalf("loaded profile differs from testdata/%s:\n%s", golden, loaded)
	}
	for _, line := range []string{
		"profile cri-shim.apparmor.d flags=(attach_disconnected,mediate_deleted) {",
		"  signal (send,receive) peer=cri-shim.apparmor.d,",
		"  ptrace (trace,tracedby,read,readby) peer=cri-shim.apparmor.d,",
		"  deny mount,",
	} {
		if !strings.Contains(loaded, line+"\n") {
			t.Errorf("profile lacks %q", line)
		}
	}
}

// goldenFor is the testdata file rendered for a host like this one: the template's output depends
// on which of three files /etc/apparmor.d has, on the daemon's own profile and on rootlesskit.
func goldenFor(t *testing.T) string {
	if _, err := exec.LookPath("rootlesskit"); err == nil {
		t.Skip("rootlesskit is on PATH: the profile gains a peer line the testdata was not rendered with")
	}
	if b, err := os.ReadFile("/proc/self/attr/current"); err == nil && !strings.HasPrefix(string(b), "unconfined") {
		t.Skipf("the test runs confined (%s): the profile's daemon peer differs from the testdata's", strings.TrimSpace(string(b)))
	}
	n := 0
	for _, f := range []string{"abi/3.0", "tunables/global", "abstractions/base"} {
		if _, err := os.Stat(filepath.Join("/etc/apparmor.d", f)); err == nil {
			n++
		}
	}
	switch n {
	case 0:
		return "default-profile.bare.apparmor"
	case 3:
		return "default-profile.debian.apparmor"
	}
	t.Skip("/etc/apparmor.d has some of abi/3.0, tunables/global, abstractions/base: no testdata for that mix")
	return ""
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
