package kuberuntime

import (
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
)

// sandboxSnapshot is a copy of a sandbox's mutable state, taken under one read lock.
type sandboxSnapshot struct {
	state legacy.SandboxState
	pid   uint32
	// netUp: the network is set up and not torn down yet.
	netUp    bool
	cni      *sandbox.NetworkResult
	exitedAt time.Time
}

// snapshot copies the sandbox's mutable state.
func (s *podSandbox) snapshot() sandboxSnapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sandboxSnapshot{state: s.state, pid: s.pid, netUp: s.netUp, cni: s.cni, exitedAt: s.exitedAt}
}

// ready tells whether the sandbox is Ready.
func (s *podSandbox) ready() bool { return s.snapshot().state == legacy.SandboxStateReady }

// markNetworkDown records that the sandbox's network is torn down.
func (s *podSandbox) markNetworkDown() {
	s.mu.Lock()
	s.netUp = false
	s.mu.Unlock()
}
