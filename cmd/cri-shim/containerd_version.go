package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/sirupsen/logrus"
)

// minContainerdVersion is the oldest containerd cri-shim runs on. Pods of a runtime handler that
// groups containers in one shim keep their sandbox in containerd's sandbox store, and the task
// API's sandbox grouping is 2.0's: containerd 1.7 had only an experimental sandbox API of another
// shape, and 1.6 (Debian 12's package) none. Everything is tested on 2.2.
var minContainerdVersion = [3]int{2, 0, 0}

// checkContainerdVersion asks the containerd behind client for its version and refuses one older
// than minContainerdVersion, saying what it found and what it needs. A version that does not read
// as major.minor.patch (a development build) is let through with a warning: nothing says it is old.
func checkContainerdVersion(ctx context.Context, client *containerd.Client, address string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := client.Version(ctx)
	if err != nil {
		return "", fmt.Errorf("containerd at %s: read its version: %w", address, err)
	}
	return v.Version, containerdVersionAllowed(v.Version, address)
}

// containerdVersionAllowed is checkContainerdVersion's verdict on a version string.
func containerdVersionAllowed(version, address string) error {
	got, ok := parseVersion(version)
	if !ok {
		logrus.WithFields(logrus.Fields{"address": address, "version": version}).
			Warn("containerd's version does not read as major.minor.patch: cannot check it is new enough")
		return nil
	}
	if compareVersions(got, minContainerdVersion) < 0 {
		return fmt.Errorf("containerd at %s is version %s; cri-shim needs containerd %s or newer "+
			"(install a newer containerd, or set containerd_mode = \"managed\" to run the one hack/setup.sh builds)",
			address, version, formatVersion(minContainerdVersion))
	}
	return nil
}

// parseVersion reads the major.minor.patch of a containerd version ("v2.2.9", "2.2.9+unknown",
// "1.6.20~ds1", "2.0.0-rc.1"). A pre-release counts as its release: containerd's release
// candidates carry their release's APIs.
func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(s, "-+~ "); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

func compareVersions(a, b [3]int) int {
	for i := range a {
		if a[i] != b[i] {
			return a[i] - b[i]
		}
	}
	return 0
}

func formatVersion(v [3]int) string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }
