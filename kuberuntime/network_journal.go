package kuberuntime

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The pod's CNI ADD starts before its pause container is recorded in containerd (RunPodSandbox
// runs them side by side). A daemon killed in between leaves a sandbox that no record names, whose
// IP lease and port mappings only a CNI DEL with the pod's config gives back: removing its network
// namespace alone leaks them (found by the kill -9 chaos test, which counts host-local's
// reservations). So the pod's config is written to its state dir before the ADD, and whatever
// cleans an unknown sandbox's leftovers (recover, CleanStaleNetNS) runs the DEL from it first.

const cniJournalFile = "cni-pod-config.pb"

func (r *ContainerdRuntime) cniJournalPath(id string) string {
	return filepath.Join(r.SandboxStateDir(id), cniJournalFile)
}

// setupPodNetwork records the pod's config for a later DEL, then runs CNI ADD.
func (r *ContainerdRuntime) setupPodNetwork(ctx context.Context, id, nsPath string, rawConfig []byte, config *runtime.PodSandboxConfig) (*sandbox.NetworkResult, error) {
	p := r.cniJournalPath(id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, rawConfig, 0o600); err != nil {
		return nil, err
	}
	return r.net.Setup(ctx, id, nsPath, config)
}

// releaseUnknownSandboxNetwork runs CNI DEL for a sandbox that no record names, when its journal
// says an ADD may have run; the journal goes once the DEL is done. It tells whether nothing is
// left to release: false keeps the journal (and so the sandbox's state dir) for a later round,
// e.g. when the node's CNI config is not installed yet.
func (r *ContainerdRuntime) releaseUnknownSandboxNetwork(ctx context.Context, id string) bool {
	p := r.cniJournalPath(id)
	raw, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return true // no ADD was started
	}
	log := logrus.WithField("sandbox", id)
	if err != nil {
		log.WithError(err).Warn("read the CNI journal of an unknown sandbox")
		return false
	}
	if r.net == nil {
		_ = os.Remove(p)
		return true
	}
	config := &runtime.PodSandboxConfig{}
	if err := proto.Unmarshal(raw, config); err != nil {
		// DEL by id alone still frees an IP lease.
		log.WithError(err).Warn("CNI journal of an unknown sandbox: bad config")
		config = &runtime.PodSandboxConfig{}
	}
	if err := r.net.Teardown(ctx, id, r.podNetNSPath(id), config); err != nil {
		log.WithError(err).Warn("CNI DEL for an unknown sandbox (tried again with the next GC round)")
		return false
	}
	_ = os.Remove(p)
	log.Info("released the network of a sandbox a killed daemon left unrecorded")
	return true
}
