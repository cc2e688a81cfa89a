package lsm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// SELinuxMode is the host's SELinux mode.
type SELinuxMode string

const (
	SELinuxDisabled   SELinuxMode = "disabled"
	SELinuxPermissive SELinuxMode = "permissive"
	SELinuxEnforcing  SELinuxMode = "enforcing"
)

// selinuxEnforcePath is selinuxfs's mode file: 1 enforcing, 0 permissive; absent without SELinux.
const selinuxEnforcePath = "/sys/fs/selinux/enforce"

// SELinux is the host's SELinux. The runtime applies no SELinux labels: containers would run with
// the daemon's own label and their files unlabelled, which an enforcing policy denies or, worse,
// allows in ways the pod's seLinuxOptions did not ask for.
type SELinux struct {
	// mode reads the host's mode.
	mode func() (SELinuxMode, error)
	// warnOnce makes the "options ignored" warning once per process, not once per container.
	warnOnce sync.Once
}

// NewSELinux is the SELinux whose mode mode reads; nil reads this host's.
func NewSELinux(mode func() (SELinuxMode, error)) *SELinux {
	if mode == nil {
		mode = hostSELinuxMode
	}
	return &SELinux{mode: mode}
}

var (
	hostSELinuxOnce sync.Once
	hostSELinux     *SELinux
)

// HostSELinux is this host's SELinux, shared by the whole process (its warning is made once).
func HostSELinux() *SELinux {
	hostSELinuxOnce.Do(func() { hostSELinux = NewSELinux(nil) })
	return hostSELinux
}

// hostSELinuxMode reads selinuxfs's enforce file.
func hostSELinuxMode() (SELinuxMode, error) { return readSELinuxMode(selinuxEnforcePath) }

// readSELinuxMode reads an enforce file: 1 enforcing, 0 permissive, none disabled.
func readSELinuxMode(path string) (SELinuxMode, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return SELinuxDisabled, nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	switch strings.TrimSpace(string(b)) {
	case "1":
		return SELinuxEnforcing, nil
	case "0":
		return SELinuxPermissive, nil
	}
	return "", fmt.Errorf("%s: unexpected %q", path, strings.TrimSpace(string(b)))
}

// ErrSELinuxEnforcing is CheckStart's refusal on a host where SELinux enforces.
var ErrSELinuxEnforcing = errors.New("SELinux is enforcing on this host, and cri-shim applies no SELinux labels: " +
	"containers would run with the daemon's label and unlabelled files, not the labels their pods ask for; " +
	"run cri-shim on a host with SELinux permissive or disabled, or use a runtime that labels containers (containerd's CRI, CRI-O)")

// CheckStart refuses to start the runtime on a host where SELinux enforces; on a permissive host
// it warns that no labels are applied.
func (s *SELinux) CheckStart() error {
	mode, err := s.mode()
	if err != nil {
		return fmt.Errorf("SELinux: %w", err)
	}
	switch mode {
	case SELinuxEnforcing:
		return ErrSELinuxEnforcing
	case SELinuxPermissive:
		logrus.Warn("SELinux is permissive on this host: cri-shim applies no SELinux labels, pods' seLinuxOptions are ignored")
	}
	return nil
}

// IgnoredOptions says, once per process, that a container's or pod's SELinux options are
// ignored: the runtime applies no labels.
func (s *SELinux) IgnoredOptions(id string) {
	s.warnOnce.Do(func() {
		mode, _ := s.mode()
		logrus.WithFields(logrus.Fields{"id": id, "selinux": mode}).Warn("SELinux options ignored: cri-shim applies no SELinux labels (said once; later pods and containers with options are not logged)")
	})
}

// SELinuxState is the SELinux part of a verbose Status.
type SELinuxState struct {
	Mode   SELinuxMode `json:"mode"`
	Labels bool        `json:"labels"`
	Reason string      `json:"reason"`
}

// State is what a verbose Status reports: the host's mode and that no labels are applied.
func (s *SELinux) State() SELinuxState {
	mode, err := s.mode()
	if err != nil {
		return SELinuxState{Mode: "unknown", Reason: err.Error()}
	}
	why := "cri-shim applies no SELinux labels: pods' seLinuxOptions are ignored"
	if mode == SELinuxDisabled {
		why = "SELinux not enabled on this host (no " + selinuxEnforcePath + "): " + why
	}
	return SELinuxState{Mode: mode, Reason: why}
}
