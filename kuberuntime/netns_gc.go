package kuberuntime

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/sirupsen/logrus"
)

// CleanStaleNetNS removes the network namespaces pinned under the state dir that belong to no
// sandbox, known or being created, and are older than minAge: what a crash between creating a
// pod's namespace and recording its sandbox leaves behind. Their CNI DEL runs first when the
// sandbox's journal says an ADD may have run (network_journal.go), and so does the DEL of the
// unknown sandboxes whose DEL failed before (their state dir then goes too). It returns the
// namespace paths removed.
func (r *ContainerdRuntime) CleanStaleNetNS(minAge time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(r.withNS(context.Background()), cleanupTimeout)
	defer cancel()

	// The dirs are read before the sandboxes are: RunPodSandbox reserves its id before it makes
	// anything, so whatever the listings show of a sandbox being made is owned below.
	stateEntries, _ := os.ReadDir(r.sandboxesState())
	entries, err := os.ReadDir(r.netnsDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	owned := map[string]bool{}
	r.sandboxes.mu.RLock()
	for id := range r.sandboxes.byID {
		owned[id] = true
	}
	for _, id := range r.sandboxes.names {
		owned[id] = true // reserved: being created
	}
	r.sandboxes.mu.RUnlock()
	stale := func(e os.DirEntry) bool {
		if owned[e.Name()] {
			return false
		}
		info, err := e.Info()
		return err == nil && time.Since(info.ModTime()) >= minAge
	}

	var errs []error
	tried := map[string]bool{} // one DEL per sandbox and round
	for _, e := range stateEntries {
		if !stale(e) {
			continue
		}
		if _, err := os.Stat(r.cniJournalPath(e.Name())); err != nil {
			continue // no pending DEL: recover or RemovePodSandbox owns this dir
		}
		tried[e.Name()] = true
		if r.releaseUnknownSandboxNetwork(ctx, e.Name()) {
			errs = append(errs, r.removeSandboxDirs(e.Name(), false))
		}
	}
	var removed []string
	for _, e := range entries {
		if !stale(e) {
			continue
		}
		if !tried[e.Name()] {
			r.releaseUnknownSandboxNetwork(ctx, e.Name())
		}
		path := r.podNetNSPath(e.Name())
		if err := sandbox.RemoveNetNS(path); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, path)
		logrus.WithField("netns", path).Info("removed a stale network namespace")
	}
	return removed, errors.Join(errs...)
}

// removeSandboxDirs unmounts what sandbox id, which no record names, left in its dirs (its
// /dev/shm, its pinned user namespace) and removes its root dir, and its state dir unless
// keepState (a CNI journal whose DEL is still to be done, network_journal.go).
func (r *ContainerdRuntime) removeSandboxDirs(id string, keepState bool) error {
	rootDir, stateDir := r.SandboxRootDir(id), r.SandboxStateDir(id)
	errs := []error{sandbox.PodFiles(rootDir, stateDir, false).Cleanup(), os.RemoveAll(rootDir)}
	if !keepState {
		errs = append(errs, os.RemoveAll(stateDir))
	}
	return errors.Join(errs...)
}
