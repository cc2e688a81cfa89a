package sandbox

import (
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/lsm"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A pod's SELinux options are ignored, and that is said once, not once per pod; the pause
// container gets no AppArmor profile.
func TestSandboxSELinuxOptionsIgnoredSaidOnce(t *testing.T) {
	hook := test.NewGlobal()
	defer hook.Reset()
	selinux := lsm.NewSELinux(func() (lsm.SELinuxMode, error) { return lsm.SELinuxDisabled, nil })
	for _, id := range []string{"p1", "p2"} {
		cfg := &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: id},
			Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				SelinuxOptions: &runtime.SELinuxOption{Level: "s0:c1,c2"},
			}},
		}
		s := genSpec(t, SpecInput{ID: id, Config: cfg, Image: imagespec.ImageConfig{Entrypoint: []string{"/pause"}}, SELinux: selinux})
		if s.Process.ApparmorProfile != "" || s.Process.SelinuxLabel != "" {
			t.Fatalf("pause confinement: apparmor %q selinux %q", s.Process.ApparmorProfile, s.Process.SelinuxLabel)
		}
	}
	var warns []*logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warns = append(warns, e)
		}
	}
	if len(warns) != 1 || warns[0].Data["id"] != "p1" || !strings.Contains(warns[0].Message, "SELinux options ignored") {
		t.Fatalf("warnings %v, want one naming p1", warns)
	}
}
