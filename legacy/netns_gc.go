package legacy

import (
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/sirupsen/logrus"
)

// CleanStaleNetNS removes the network namespaces pinned under the state dir that belong to no
// sandbox, known or being created, and are older than minAge: what a crash between creating a
// pod's namespace and recording its sandbox leaves behind. It returns the paths removed.
func (r *ContainerdRuntime) CleanStaleNetNS(minAge time.Duration) ([]string, error) {
	entries, err := os.ReadDir(r.netnsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
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

	var removed []string
	var errs []error
	for _, e := range entries {
		if owned[e.Name()] {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < minAge {
			continue
		}
		path := filepath.Join(r.netnsDir(), e.Name())
		if err := sandbox.RemoveNetNS(path); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, path)
		logrus.WithField("netns", path).Info("removed a stale network namespace")
	}
	return removed, errors.Join(errs...)
}
