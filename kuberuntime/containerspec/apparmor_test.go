package containerspec_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec/containerspectest"
	"github.com/cri-shim/cri-shim/lsm"
	"github.com/cri-shim/cri-shim/lsm/apparmorprofile"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// kernel is a host's AppArmor: its loaded profiles and the loads made.
type kernel struct {
	mu       sync.Mutex
	enabled  bool
	profiles []string
	loads    int
	loadErr  error
}

func (k *kernel) appArmor() *lsm.AppArmor {
	return lsm.NewAppArmor(lsm.AppArmorHost{
		Supported: func() (bool, string) { return k.enabled, "not in this test" },
		Profiles: func() ([]byte, error) {
			k.mu.Lock()
			defer k.mu.Unlock()
			var b strings.Builder
			for _, p := range k.profiles {
				b.WriteString(p + " (enforce)\n")
			}
			return []byte(b.String()), nil
		},
		Generate: func(name string) (string, error) { return "profile " + name + " {}", nil },
		Load: func(_ context.Context, text string) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			k.loads++
			if k.loadErr != nil {
				return k.loadErr
			}
			k.profiles = append(k.profiles, strings.Fields(text)[1])
			return nil
		},
	})
}

// specOn is the spec of a container configured by config on a host with AppArmor as k is.
func specOn(t *testing.T, k *kernel, aa *lsm.AppArmor, config func(*runtime.LinuxContainerSecurityContext), privilegedPod bool) (*runtimespec.Spec, error) {
	t.Helper()
	in := containerspectest.BaseInput(t)
	in.Host.AppArmor = aa
	config(in.Config.Linux.SecurityContext)
	if privilegedPod {
		in.SandboxConfig.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
	}
	return containerspectest.Generate(t, in, containerspectest.Rootfs(t))
}

func localhost(name string) *runtime.SecurityProfile {
	return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: name}
}

var (
	runtimeDefault = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	unconfined     = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}
)

func TestAppArmorOnHostWithAppArmor(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sc         func(*runtime.LinuxContainerSecurityContext)
		privileged bool
		want       string // the spec's profile
		wantErr    func(error) bool
	}{
		{name: "unset", sc: func(*runtime.LinuxContainerSecurityContext) {}, want: lsm.DefaultProfileName},
		{name: "RuntimeDefault", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Apparmor = runtimeDefault }, want: lsm.DefaultProfileName},
		{name: "Unconfined", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Apparmor = unconfined }, want: ""},
		{name: "Localhost loaded", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Apparmor = localhost("site-profile") }, want: "site-profile"},
		{name: "Localhost with its prefix", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Apparmor = localhost("localhost/site-profile") }, want: "site-profile"},
		{name: "Localhost not loaded", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Apparmor = localhost("missing") }, wantErr: errdefs.IsFailedPrecondition},
		{name: "Localhost without a name", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Apparmor = localhost("") }, wantErr: errdefs.IsInvalidArgument},
		{name: "RuntimeDefault with a localhost_ref", sc: func(sc *runtime.LinuxContainerSecurityContext) {
			sc.Apparmor = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault, LocalhostRef: "x"}
		}, wantErr: errdefs.IsInvalidArgument},
		{name: "deprecated runtime/default", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.ApparmorProfile = "runtime/default" }, want: lsm.DefaultProfileName},
		{name: "deprecated localhost/NAME", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.ApparmorProfile = "localhost/site-profile" }, want: "site-profile"},
		{name: "deprecated localhost/NAME not loaded", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.ApparmorProfile = "localhost/missing" }, wantErr: errdefs.IsFailedPrecondition},
		{name: "deprecated unconfined", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.ApparmorProfile = "unconfined" }, want: ""},
		{name: "deprecated unknown", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.ApparmorProfile = "bogus" }, wantErr: errdefs.IsInvalidArgument},
		{name: "field over deprecated string", sc: func(sc *runtime.LinuxContainerSecurityContext) {
			sc.Apparmor = unconfined
			sc.ApparmorProfile = "localhost/site-profile"
		}, want: ""},
		{name: "privileged unset", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Privileged = true }, privileged: true, want: ""},
		{name: "privileged RuntimeDefault", sc: func(sc *runtime.LinuxContainerSecurityContext) {
			sc.Privileged = true
			sc.Apparmor = runtimeDefault
		}, privileged: true, want: ""},
		{name: "privileged Localhost", sc: func(sc *runtime.LinuxContainerSecurityContext) {
			sc.Privileged = true
			sc.Apparmor = localhost("site-profile")
		}, privileged: true, want: "site-profile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &kernel{enabled: true, profiles: []string{"site-profile"}}
			s, err := specOn(t, k, k.appArmor(), tc.sc, tc.privileged)
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Process.ApparmorProfile != tc.want {
				t.Fatalf("profile %q, want %q", s.Process.ApparmorProfile, tc.want)
			}
			if wantLoads := map[bool]int{true: 1, false: 0}[tc.want == lsm.DefaultProfileName]; k.loads != wantLoads {
				t.Fatalf("%d loads, want %d", k.loads, wantLoads)
			}
		})
	}
}

func TestAppArmorDefaultProfileLoadedOnce(t *testing.T) {
	k := &kernel{enabled: true}
	aa := k.appArmor()
	for range 3 {
		s, err := specOn(t, k, aa, func(*runtime.LinuxContainerSecurityContext) {}, false)
		if err != nil || s.Process.ApparmorProfile != lsm.DefaultProfileName {
			t.Fatalf("spec %v, %v", s, err)
		}
	}
	if k.loads != 1 {
		t.Fatalf("%d loads for 3 containers, want 1", k.loads)
	}
}

func TestAppArmorDefaultProfileAlreadyLoaded(t *testing.T) {
	k := &kernel{enabled: true, profiles: []string{lsm.DefaultProfileName}}
	s, err := specOn(t, k, k.appArmor(), func(*runtime.LinuxContainerSecurityContext) {}, false)
	if err != nil || s.Process.ApparmorProfile != lsm.DefaultProfileName || k.loads != 0 {
		t.Fatalf("profile %q, %v, %d loads; want the default, not reloaded", s.Process.ApparmorProfile, err, k.loads)
	}
}

func TestAppArmorDefaultProfileLoadFailure(t *testing.T) {
	k := &kernel{enabled: true, loadErr: errors.New("apparmor_parser -Kr /tmp/p: exit status 1: AppArmor parser error for /tmp/p at line 9: Could not open 'tunables/global'")}
	_, err := specOn(t, k, k.appArmor(), func(*runtime.LinuxContainerSecurityContext) {}, false)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "Could not open 'tunables/global'") {
		t.Fatalf("err %v, want FailedPrecondition with the parser's output", err)
	}
}

func TestAppArmorOnHostWithout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sc      func(*runtime.LinuxContainerSecurityContext)
		wantErr bool
	}{
		{name: "unset", sc: func(*runtime.LinuxContainerSecurityContext) {}},
		{name: "RuntimeDefault", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Apparmor = runtimeDefault }},
		{name: "Unconfined", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Apparmor = unconfined }},
		{name: "deprecated runtime/default", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.ApparmorProfile = "runtime/default" }},
		{name: "Localhost", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.Apparmor = localhost("site-profile") }, wantErr: true},
		{name: "deprecated localhost/NAME", sc: func(sc *runtime.LinuxContainerSecurityContext) { sc.ApparmorProfile = "localhost/site-profile" }, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &kernel{profiles: []string{"site-profile"}}
			s, err := specOn(t, k, k.appArmor(), tc.sc, false)
			if tc.wantErr {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "AppArmor is not enabled") {
					t.Fatalf("err %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil || s.Process.ApparmorProfile != "" || k.loads != 0 {
				t.Fatalf("profile %q, %v, %d loads; want none", s.Process.ApparmorProfile, err, k.loads)
			}
		})
	}
}

func TestSELinuxOptionsIgnoredSaidOnce(t *testing.T) {
	hook := test.NewGlobal()
	defer hook.Reset()
	selinux := lsm.NewSELinux(func() (lsm.SELinuxMode, error) { return lsm.SELinuxDisabled, nil })
	for _, id := range []string{"c1", "c2"} {
		in := containerspectest.BaseInput(t)
		in.ID = id
		in.Host.SELinux = selinux
		in.Config.Linux.SecurityContext.SelinuxOptions = &runtime.SELinuxOption{Type: "spc_t"}
		if _, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t)); err != nil {
			t.Fatal(err)
		}
	}
	var warns []string
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warns = append(warns, e.Message)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "SELinux options ignored") {
		t.Fatalf("warnings %q, want one", warns)
	}
}

// The default host's AppArmor and SELinux are this host's.
func TestDefaultHostLSMs(t *testing.T) {
	h := containerspec.DefaultHost()
	if h.AppArmor != apparmorprofile.Host() || h.SELinux != lsm.HostSELinux() {
		t.Fatal("DefaultHost's AppArmor or SELinux is not the process's")
	}
}
