package legacy

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// runcFeatures is what `runc features` reports that cri-shim relies on.
type runcFeatures struct {
	MountOptions []string `json:"mountOptions"`
}

var (
	runcFeaturesOnce sync.Once
	runcRRO          bool
)

// RecursiveReadOnlySupported tells whether the runc on this host applies recursive read-only
// mounts ("rro", runc ≥ 1.1 on a kernel with mount_setattr). It asks runc once.
func RecursiveReadOnlySupported() bool {
	runcFeaturesOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "runc", "features").Output()
		if err != nil {
			logrus.WithError(err).Info("runc features unavailable: recursive read-only mounts off")
			return
		}
		var f runcFeatures
		if err := json.Unmarshal(out, &f); err != nil {
			logrus.WithError(err).Warn("runc features: unreadable output")
			return
		}
		runcRRO = slices.Contains(f.MountOptions, "rro")
	})
	return runcRRO
}

// rroSupported is RecursiveReadOnlySupported, replaceable by tests.
var rroSupported = RecursiveReadOnlySupported
