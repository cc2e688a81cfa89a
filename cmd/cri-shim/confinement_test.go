package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/lsm"
	"github.com/sirupsen/logrus/hooks/test"
)

func seMode(m lsm.SELinuxMode) *lsm.SELinux {
	return lsm.NewSELinux(func() (lsm.SELinuxMode, error) { return m, nil })
}

func noAppArmor() *lsm.AppArmor {
	return lsm.NewAppArmor(lsm.AppArmorHost{Supported: func() (bool, string) { return false, "no apparmor in this test" }})
}

func TestCheckConfinementRefusesEnforcingSELinux(t *testing.T) {
	if err := checkConfinement(noAppArmor(), seMode(lsm.SELinuxEnforcing)); !errors.Is(err, lsm.ErrSELinuxEnforcing) {
		t.Fatalf("err %v, want the SELinux refusal", err)
	}
}

func TestCheckConfinementSaysWhyNoAppArmor(t *testing.T) {
	hook := test.NewGlobal()
	defer hook.Reset()
	if err := checkConfinement(noAppArmor(), seMode(lsm.SELinuxDisabled)); err != nil {
		t.Fatal(err)
	}
	if e := hook.LastEntry(); e == nil || !strings.Contains(e.Message, "AppArmor not enabled on this host (no apparmor in this test)") {
		t.Fatalf("log %v, want why AppArmor is off", e)
	}
}

func TestConfinementInfo(t *testing.T) {
	info := confinementInfo(noAppArmor(), seMode(lsm.SELinuxDisabled))()
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"apparmor":{"enabled":false,"reason":"AppArmor not enabled on this host (no apparmor in this test): containers get no profile"},` +
		`"selinux":{"mode":"disabled","labels":false,"reason":"SELinux not enabled on this host (no /sys/fs/selinux/enforce): cri-shim applies no SELinux labels: pods' seLinuxOptions are ignored"}}`
	if string(b) != want {
		t.Fatalf("info\n%s\nwant\n%s", b, want)
	}
}
