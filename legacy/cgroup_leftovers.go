package legacy

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/sirupsen/logrus"
)

// cgroupRoot is where the cgroup hierarchies are mounted (a variable for tests).
var cgroupRoot = "/sys/fs/cgroup"

// removeCgroupLeftovers removes the cgroup of a deleted task (its OCI cgroupsPath) from every
// hierarchy where it is still there and empty. runc removes it when the task is deleted, except
// when its create was cut short: the daemon killed under a RunPodSandbox or StartContainer takes
// its managed containerd down, which cancels `runc create`, and containerd's clean-up of the
// dead shim then leaves the empty cgroups behind (found by the kill -9 chaos test in
// test/reliability). rmdir only ever removes an empty cgroup, so this cannot disturb a live one.
// Systemd-style paths ("slice:prefix:name") are left to systemd.
func removeCgroupLeftovers(cgroupsPath string) {
	if cgroupsPath == "" || strings.Contains(cgroupsPath, ":") || !filepath.IsAbs(cgroupsPath) ||
		filepath.Clean(cgroupsPath) != cgroupsPath || cgroupsPath == "/" {
		return
	}
	dirs := []string{filepath.Join(cgroupRoot, cgroupsPath)} // cgroup v2 at the root
	if ents, err := os.ReadDir(cgroupRoot); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), cgroupsPath))
			}
		}
	}
	for _, d := range dirs {
		if err := os.Remove(d); err == nil {
			logrus.WithField("cgroup", d).Debug("removed a cgroup left by an interrupted task create")
		} else if !errors.Is(err, fs.ErrNotExist) {
			logrus.WithError(err).WithField("cgroup", d).Debug("cgroup left in place")
		}
	}
}

// specCgroupsPath is the cgroupsPath in a containerd container's OCI spec ("" when unknown).
func specCgroupsPath(ctx context.Context, c containerd.Container) string {
	s, err := c.Spec(ctx)
	if err != nil || s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}
