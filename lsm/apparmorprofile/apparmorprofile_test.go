package apparmorprofile

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/lsm"
)

// TestDefaultProfileIsContainerds compares the profile the runtime would load on this host with
// containerd's template output for a host like it (lsm/testdata/README says where each came
// from); lsm's tests show EnsureDefault loads what Generate gives.
func TestDefaultProfileIsContainerds(t *testing.T) {
	golden := goldenFor(t)
	loaded, err := Generate(lsm.DefaultProfileName)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("..", "testdata", golden))
	if err != nil {
		t.Fatal(err)
	}
	if loaded != string(want) {
		t.Fatalf("loaded profile differs from lsm/testdata/%s:\n%s", golden, loaded)
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

// Host's AppArmor generates containerd's profile, not lsm's refusal.
func TestHostGeneratesContainerds(t *testing.T) {
	if Host() != Host() {
		t.Fatal("Host is not shared")
	}
	text, err := Generate("x.apparmor.d")
	if err != nil || !strings.Contains(text, "profile x.apparmor.d flags=") {
		t.Fatalf("Generate: %v %q", err, text)
	}
}
