package main

import (
	"github.com/cri-shim/cri-shim/lsm"
	"github.com/sirupsen/logrus"
)

// checkConfinement refuses to start where SELinux enforces (cri-shim applies no labels) and logs
// whether containers get AppArmor profiles, and why not.
func checkConfinement(aa *lsm.AppArmor, se *lsm.SELinux) error {
	if err := se.CheckStart(); err != nil {
		return err
	}
	if s := aa.State(); s.Enabled {
		logrus.WithField("default_profile", s.DefaultProfile).Info("AppArmor: containers without a profile get the default one")
	} else {
		logrus.Info(s.Reason)
	}
	return nil
}

// confinementInfo is the host's confinement as a verbose Status (crictl info) reports it.
func confinementInfo(aa *lsm.AppArmor, se *lsm.SELinux) func() map[string]any {
	return func() map[string]any {
		return map[string]any{"apparmor": aa.State(), "selinux": se.State()}
	}
}
