package lsm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func mode(m SELinuxMode) func() (SELinuxMode, error) {
	return func() (SELinuxMode, error) { return m, nil }
}

func TestSELinuxCheckStart(t *testing.T) {
	if err := NewSELinux(mode(SELinuxEnforcing)).CheckStart(); !errors.Is(err, ErrSELinuxEnforcing) || !strings.Contains(err.Error(), "applies no SELinux labels") {
		t.Errorf("enforcing: %v, want the refusal", err)
	}
	for _, m := range []SELinuxMode{SELinuxPermissive, SELinuxDisabled} {
		if err := NewSELinux(mode(m)).CheckStart(); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	broken := NewSELinux(func() (SELinuxMode, error) { return "", errors.New("read /sys/fs/selinux/enforce: permission denied") })
	if err := broken.CheckStart(); err == nil {
		t.Error("an unreadable mode started")
	}
}

func TestSELinuxIgnoredOptionsWarnsOnce(t *testing.T) {
	hook := test.NewGlobal()
	defer hook.Reset()
	s := NewSELinux(mode(SELinuxDisabled))
	s.IgnoredOptions("c1")
	s.IgnoredOptions("c2")
	var warns []*logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warns = append(warns, e)
		}
	}
	if len(warns) != 1 || warns[0].Data["id"] != "c1" || !strings.Contains(warns[0].Message, "SELinux options ignored") {
		t.Fatalf("warnings %v, want one naming c1", warns)
	}
}

func TestSELinuxState(t *testing.T) {
	if s := NewSELinux(mode(SELinuxDisabled)).State(); s.Mode != SELinuxDisabled || s.Labels || !strings.HasPrefix(s.Reason, "SELinux not enabled on this host") {
		t.Errorf("disabled: %+v", s)
	}
	if s := NewSELinux(mode(SELinuxPermissive)).State(); s.Mode != SELinuxPermissive || !strings.Contains(s.Reason, "applies no SELinux labels") {
		t.Errorf("permissive: %+v", s)
	}
}

func TestReadSELinuxMode(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]SELinuxMode{"1\n": SELinuxEnforcing, "0\n": SELinuxPermissive, "": ""} {
		p := filepath.Join(dir, "enforce")
		os.WriteFile(p, []byte(content), 0o644)
		got, err := readSELinuxMode(p)
		if want == "" {
			if err == nil {
				t.Errorf("%q: %s, want an error", content, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: %s, %v; want %s", content, got, err, want)
		}
	}
	if got, err := readSELinuxMode(filepath.Join(dir, "none")); err != nil || got != SELinuxDisabled {
		t.Errorf("no selinuxfs: %s, %v", got, err)
	}
}
