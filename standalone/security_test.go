package standalone

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const testUsernsHostID = 1 << 30

var secOpts = ConvertOptions{VolumeRoot: "/vol", SeccompRoot: "/var/lib/cri-shim/seccomp",
	UsernsHostID: func(legacy.UID) (uint32, error) { return testUsernsHostID, nil }}

func convertYAML(t *testing.T, m string) (*Pod, error) {
	t.Helper()
	pod, err := ParseManifest([]byte(m))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, m)
	}
	return Convert(pod, "", secOpts)
}

// allConfigs are the container configs of a converted pod, init containers first.
func allConfigs(p *Pod) []*runtime.ContainerConfig {
	var out []*runtime.ContainerConfig
	for _, c := range append(append([]legacy.ContainerSpec{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		out = append(out, c.Config)
	}
	return out
}

// isProfile tells whether sp is set and of type typ (RuntimeDefault is the enum's zero: an unset
// profile must not pass for it).
func isProfile(sp *runtime.SecurityProfile, typ runtime.SecurityProfile_ProfileType) bool {
	return sp != nil && sp.ProfileType == typ
}

func configOf(p *Pod, name string) *runtime.ContainerConfig {
	for _, c := range allConfigs(p) {
		if c.GetMetadata().GetName() == name {
			return c
		}
	}
	return nil
}

// securityCases: for each security field of a manifest, either the converted config carries it
// the way the kubelet sends it, or Convert refuses the manifest with an error naming the field.
var securityCases = []struct {
	name     string
	manifest string
	refuse   string // a substring of the error; "" when the manifest converts
	check    func(t *testing.T, p *Pod)
}{
	{name: "container seccomp RuntimeDefault", manifest: `
metadata: {name: p}
spec:
  containers:
  - {name: c, image: busybox:1.36, securityContext: {seccompProfile: {type: RuntimeDefault}}}
  - {name: other, image: busybox:1.36}
`, check: func(t *testing.T, p *Pod) {
		if sp := configOf(p, "c").Linux.SecurityContext.Seccomp; !isProfile(sp, runtime.SecurityProfile_RuntimeDefault) {
			t.Errorf("c: seccomp %v, want RuntimeDefault", sp)
		}
		if sp := configOf(p, "other").Linux.SecurityContext.Seccomp; sp != nil {
			t.Errorf("other: seccomp %v: only c asked for one", sp)
		}
	}},
	{name: "pod seccomp RuntimeDefault, a container's own wins", manifest: `
metadata: {name: p}
spec:
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  initContainers: [{name: i, image: busybox:1.36}]
  containers:
  - {name: c, image: busybox:1.36}
  - {name: free, image: busybox:1.36, securityContext: {seccompProfile: {type: Unconfined}}}
`, check: func(t *testing.T, p *Pod) {
		for _, n := range []string{"i", "c"} {
			if sp := configOf(p, n).Linux.SecurityContext.Seccomp; !isProfile(sp, runtime.SecurityProfile_RuntimeDefault) {
				t.Errorf("%s: seccomp %v, want the pod's RuntimeDefault", n, sp)
			}
		}
		if sp := configOf(p, "free").Linux.SecurityContext.Seccomp; !isProfile(sp, runtime.SecurityProfile_Unconfined) {
			t.Errorf("free: seccomp %v, want its own Unconfined", sp)
		}
		if sp := p.Spec.Sandbox.Linux.SecurityContext.Seccomp; !isProfile(sp, runtime.SecurityProfile_RuntimeDefault) {
			t.Errorf("sandbox: seccomp %v, want the pod's RuntimeDefault", sp)
		}
	}},
	{name: "seccomp Localhost under the seccomp root", manifest: `
metadata: {name: p}
spec:
  containers:
  - {name: c, image: busybox:1.36, securityContext: {seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}}}
`, check: func(t *testing.T, p *Pod) {
		sp := configOf(p, "c").Linux.SecurityContext.Seccomp
		if !isProfile(sp, runtime.SecurityProfile_Localhost) || sp.GetLocalhostRef() != "/var/lib/cri-shim/seccomp/profiles/audit.json" {
			t.Errorf("seccomp %v, want Localhost /var/lib/cri-shim/seccomp/profiles/audit.json", sp)
		}
	}},
	{name: "seccomp Localhost without a profile", refuse: "seccompProfile", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {seccompProfile: {type: Localhost}}}]
`},
	{name: "seccomp Localhost climbing out", refuse: "seccompProfile", manifest: `
metadata: {name: p}
spec:
  securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../../../etc/x.json}}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "seccomp Localhost absolute", refuse: "seccompProfile", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {seccompProfile: {type: Localhost, localhostProfile: /etc/x.json}}}]
`},
	{name: "seccomp localhostProfile with RuntimeDefault", refuse: "seccompProfile", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {seccompProfile: {type: RuntimeDefault, localhostProfile: x.json}}}]
`},
	{name: "seccomp unknown type", refuse: "seccompProfile", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {seccompProfile: {type: Strict}}}]
`},
	{name: "seccomp pod annotation", manifest: `
metadata: {name: p, annotations: {seccomp.security.alpha.kubernetes.io/pod: runtime/default}}
spec:
  containers: [{name: c, image: busybox:1.36}]
`, check: func(t *testing.T, p *Pod) {
		if sp := configOf(p, "c").Linux.SecurityContext.Seccomp; !isProfile(sp, runtime.SecurityProfile_RuntimeDefault) {
			t.Errorf("seccomp %v, want the annotation's RuntimeDefault", sp)
		}
	}},
	{name: "seccomp container annotation", manifest: `
metadata: {name: p, annotations: {container.seccomp.security.alpha.kubernetes.io/c: localhost/a.json}}
spec:
  containers: [{name: c, image: busybox:1.36}, {name: d, image: busybox:1.36}]
`, check: func(t *testing.T, p *Pod) {
		if sp := configOf(p, "c").Linux.SecurityContext.Seccomp; !isProfile(sp, runtime.SecurityProfile_Localhost) || sp.GetLocalhostRef() != "/var/lib/cri-shim/seccomp/a.json" {
			t.Errorf("c: seccomp %v, want the annotation's Localhost", sp)
		}
		if sp := configOf(p, "d").Linux.SecurityContext.Seccomp; isProfile(sp, runtime.SecurityProfile_Localhost) {
			t.Errorf("d: seccomp %v", sp)
		}
	}},
	{name: "seccomp annotation against the field", refuse: "seccomp", manifest: `
metadata: {name: p, annotations: {seccomp.security.alpha.kubernetes.io/pod: unconfined}}
spec:
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "seccomp annotation bad value", refuse: "seccomp", manifest: `
metadata: {name: p, annotations: {container.seccomp.security.alpha.kubernetes.io/c: strict}}
spec:
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "appArmor RuntimeDefault without AppArmor", refuse: "appArmorProfile", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {appArmorProfile: {type: RuntimeDefault}}}]
`},
	{name: "pod appArmor RuntimeDefault without AppArmor", refuse: "appArmorProfile", manifest: `
metadata: {name: p}
spec:
  securityContext: {appArmorProfile: {type: RuntimeDefault}}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "appArmor Localhost without AppArmor", refuse: "appArmorProfile", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {appArmorProfile: {type: Localhost, localhostProfile: k8s-nginx}}}]
`},
	{name: "appArmor annotation", refuse: "apparmor", manifest: `
metadata: {name: p, annotations: {container.apparmor.security.beta.kubernetes.io/c: runtime/default}}
spec:
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "appArmor annotation of no container", refuse: "apparmor", manifest: `
metadata: {name: p, annotations: {container.apparmor.security.beta.kubernetes.io/x: unconfined}}
spec:
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "appArmor Unconfined", manifest: `
metadata: {name: p, annotations: {container.apparmor.security.beta.kubernetes.io/d: unconfined}}
spec:
  containers:
  - {name: c, image: busybox:1.36, securityContext: {appArmorProfile: {type: Unconfined}}}
  - {name: d, image: busybox:1.36}
`, check: func(t *testing.T, p *Pod) {
		for _, n := range []string{"c", "d"} {
			if ap := configOf(p, n).Linux.SecurityContext.Apparmor; !isProfile(ap, runtime.SecurityProfile_Unconfined) {
				t.Errorf("%s: apparmor %v, want Unconfined", n, ap)
			}
		}
	}},
	{name: "pod seLinuxOptions", refuse: "seLinuxOptions", manifest: `
metadata: {name: p}
spec:
  securityContext: {seLinuxOptions: {level: "s0:c123,c456"}}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "container seLinuxOptions", refuse: "seLinuxOptions", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {seLinuxOptions: {type: spc_t}}}]
`},
	{name: "seLinuxChangePolicy", refuse: "seLinuxChangePolicy", manifest: `
metadata: {name: p}
spec:
  securityContext: {seLinuxChangePolicy: MountOption}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "windowsOptions", refuse: "windowsOptions", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {windowsOptions: {runAsUserName: ContainerUser}}}]
`},
	{name: "fsGroup and supplementalGroups", manifest: `
metadata: {name: p}
spec:
  securityContext: {fsGroup: 2000, supplementalGroups: [3000, 3001], fsGroupChangePolicy: OnRootMismatch}
  initContainers: [{name: i, image: busybox:1.36}]
  containers: [{name: c, image: busybox:1.36}]
`, check: func(t *testing.T, p *Pod) {
		want := []int64{2000, 3000, 3001} // the kubelet's order: fsGroup first
		for _, c := range allConfigs(p) {
			if g := c.Linux.SecurityContext.SupplementalGroups; !slices.Equal(g, want) {
				t.Errorf("%s: supplemental groups %v, want %v", c.Metadata.Name, g, want)
			}
		}
		if g := p.Spec.Sandbox.Linux.SecurityContext.SupplementalGroups; !slices.Equal(g, want) {
			t.Errorf("sandbox: supplemental groups %v, want %v", g, want)
		}
		if p.FSGroup == nil || *p.FSGroup != 2000 || p.FSGroupChangePolicy != corev1.FSGroupChangeOnRootMismatch {
			t.Errorf("pod fsGroup %v policy %q", p.FSGroup, p.FSGroupChangePolicy)
		}
	}},
	{name: "fsGroupChangePolicy bad", refuse: "fsGroupChangePolicy", manifest: `
metadata: {name: p}
spec:
  securityContext: {fsGroup: 2000, fsGroupChangePolicy: Never}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "supplementalGroupsPolicy Strict", manifest: `
metadata: {name: p}
spec:
  securityContext: {supplementalGroupsPolicy: Strict}
  containers: [{name: c, image: busybox:1.36}]
`, check: func(t *testing.T, p *Pod) {
		if sp := configOf(p, "c").Linux.SecurityContext.SupplementalGroupsPolicy; sp != runtime.SupplementalGroupsPolicy_Strict {
			t.Errorf("container: policy %v", sp)
		}
		if sp := p.Spec.Sandbox.Linux.SecurityContext.SupplementalGroupsPolicy; sp != runtime.SupplementalGroupsPolicy_Strict {
			t.Errorf("sandbox: policy %v", sp)
		}
	}},
	{name: "supplementalGroupsPolicy bad", refuse: "supplementalGroupsPolicy", manifest: `
metadata: {name: p}
spec:
  securityContext: {supplementalGroupsPolicy: Loose}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "hostUsers false", manifest: `
metadata: {name: p}
spec:
  hostUsers: false
  containers:
  - name: c
    image: busybox:1.36
    volumeMounts: [{name: data, mountPath: /data}, {name: host, mountPath: /host}, {name: data, mountPath: /sub, subPath: s}]
  volumes: [{name: data, emptyDir: {}}, {name: host, hostPath: {path: /srv}}]
`, check: func(t *testing.T, p *Pod) {
		want := &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: []*runtime.IDMapping{{ContainerId: 0, HostId: testUsernsHostID, Length: 65536}},
			Gids: []*runtime.IDMapping{{ContainerId: 0, HostId: testUsernsHostID, Length: 65536}}}
		if u := p.Spec.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions; !proto.Equal(u, want) {
			t.Errorf("sandbox userns %v, want %v", u, want)
		}
		c := configOf(p, "c")
		if u := c.Linux.SecurityContext.NamespaceOptions.UsernsOptions; !proto.Equal(u, want) {
			t.Errorf("container userns %v, want %v", u, want)
		}
		// The volumes are idmapped with the pod's mapping: what is 0 on the disk is 0 inside.
		for _, m := range c.Mounts {
			if len(m.UidMappings) != 1 || !proto.Equal(m.UidMappings[0], want.Uids[0]) || len(m.GidMappings) != 1 || !proto.Equal(m.GidMappings[0], want.Gids[0]) {
				t.Errorf("mount %s: mappings %v %v", m.ContainerPath, m.UidMappings, m.GidMappings)
			}
		}
	}},
	{name: "hostUsers true", manifest: `
metadata: {name: p}
spec:
  hostUsers: true
  containers: [{name: c, image: busybox:1.36}]
`, check: func(t *testing.T, p *Pod) {
		if u := p.Spec.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions; u != nil && u.Mode != runtime.NamespaceMode_NODE {
			t.Errorf("userns %v", u)
		}
	}},
	{name: "hostUsers false with hostNetwork", refuse: "hostUsers", manifest: `
metadata: {name: p}
spec:
  hostUsers: false
  hostNetwork: true
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "procMount Default: the kubelet's masked and read-only paths", manifest: `
metadata: {name: p}
spec:
  initContainers: [{name: i, image: busybox:1.36}]
  containers: [{name: c, image: busybox:1.36}, {name: d, image: busybox:1.36, securityContext: {procMount: Default}}]
`, check: func(t *testing.T, p *Pod) {
		for _, c := range allConfigs(p) {
			sc := c.Linux.SecurityContext
			if !slices.Contains(sc.MaskedPaths, "/proc/kcore") || !slices.Contains(sc.ReadonlyPaths, "/proc/sys") || !slices.Contains(sc.ReadonlyPaths, "/proc/sysrq-trigger") {
				t.Errorf("%s: masked %v, read-only %v", c.Metadata.Name, sc.MaskedPaths, sc.ReadonlyPaths)
			}
		}
	}},
	{name: "procMount Unmasked in a user namespace", manifest: `
metadata: {name: p}
spec:
  hostUsers: false
  containers: [{name: c, image: busybox:1.36, securityContext: {procMount: Unmasked}}, {name: d, image: busybox:1.36}]
`, check: func(t *testing.T, p *Pod) {
		if sc := configOf(p, "c").Linux.SecurityContext; sc.MaskedPaths == nil || len(sc.MaskedPaths)+len(sc.ReadonlyPaths) != 0 {
			t.Errorf("c: masked %#v, read-only %#v, want both empty (not unset)", sc.MaskedPaths, sc.ReadonlyPaths)
		}
		if sc := configOf(p, "d").Linux.SecurityContext; !slices.Contains(sc.MaskedPaths, "/proc/kcore") {
			t.Errorf("d: masked %v", sc.MaskedPaths)
		}
	}},
	{name: "procMount Unmasked with the host's users", refuse: "procMount", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {procMount: Unmasked}}]
`},
	{name: "procMount bad", refuse: "procMount", manifest: `
metadata: {name: p}
spec:
  hostUsers: false
  containers: [{name: c, image: busybox:1.36, securityContext: {procMount: Half}}]
`},
	{name: "sysctls", manifest: `
metadata: {name: p}
spec:
  securityContext: {sysctls: [{name: kernel.shm_rmid_forced, value: "1"}, {name: net.ipv4.ip_local_port_range, value: "1024 65000"}]}
  containers: [{name: c, image: busybox:1.36}]
`, check: func(t *testing.T, p *Pod) {
		s := p.Spec.Sandbox.Linux.Sysctls
		if s["kernel.shm_rmid_forced"] != "1" || s["net.ipv4.ip_local_port_range"] != "1024 65000" {
			t.Errorf("sysctls %v", s)
		}
	}},
	{name: "sysctl of the node", refuse: "sysctl", manifest: `
metadata: {name: p}
spec:
  securityContext: {sysctls: [{name: kernel.panic, value: "0"}]}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "net sysctl with hostNetwork", refuse: "sysctl", manifest: `
metadata: {name: p}
spec:
  hostNetwork: true
  securityContext: {sysctls: [{name: net.ipv4.tcp_syncookies, value: "1"}]}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "ipc sysctl with hostIPC", refuse: "sysctl", manifest: `
metadata: {name: p}
spec:
  hostIPC: true
  securityContext: {sysctls: [{name: kernel.shm_rmid_forced, value: "1"}]}
  containers: [{name: c, image: busybox:1.36}]
`},
	{name: "runAsUser and runAsGroup", manifest: `
metadata: {name: p}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 1001}
  containers: [{name: c, image: busybox:1.36}, {name: d, image: busybox:1.36, securityContext: {runAsGroup: 7}}]
`, check: func(t *testing.T, p *Pod) {
		c, d := configOf(p, "c").Linux.SecurityContext, configOf(p, "d").Linux.SecurityContext
		if c.RunAsUser.GetValue() != 1000 || c.RunAsGroup.GetValue() != 1001 || d.RunAsUser.GetValue() != 1000 || d.RunAsGroup.GetValue() != 7 {
			t.Errorf("c %v/%v, d %v/%v", c.RunAsUser, c.RunAsGroup, d.RunAsUser, d.RunAsGroup)
		}
	}},
	{name: "runAsGroup without runAsUser", refuse: "runAsGroup", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, securityContext: {runAsGroup: 7}}]
`},
	{name: "mountPropagation and recursiveReadOnly", manifest: `
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox:1.36
    securityContext: {privileged: true}
    volumeMounts:
    - {name: host, mountPath: /h2c, mountPropagation: HostToContainer}
    - {name: host, mountPath: /bi, mountPropagation: Bidirectional}
    - {name: host, mountPath: /rro, readOnly: true, recursiveReadOnly: Enabled}
    - {name: host, mountPath: /none, mountPropagation: None, recursiveReadOnly: Disabled}
  volumes: [{name: host, hostPath: {path: /srv}}]
`, check: func(t *testing.T, p *Pod) {
		ms := configOf(p, "c").Mounts
		if len(ms) != 4 || ms[0].Propagation != runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER ||
			ms[1].Propagation != runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL ||
			!ms[2].RecursiveReadOnly || !ms[2].Readonly || ms[2].Propagation != runtime.MountPropagation_PROPAGATION_PRIVATE ||
			ms[3].RecursiveReadOnly || ms[3].Propagation != runtime.MountPropagation_PROPAGATION_PRIVATE {
			t.Errorf("mounts %v", ms)
		}
	}},
	{name: "Bidirectional unprivileged", refuse: "mountPropagation", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, volumeMounts: [{name: host, mountPath: /bi, mountPropagation: Bidirectional}]}]
  volumes: [{name: host, hostPath: {path: /srv}}]
`},
	{name: "mountPropagation bad", refuse: "mountPropagation", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, volumeMounts: [{name: host, mountPath: /x, mountPropagation: Sideways}]}]
  volumes: [{name: host, hostPath: {path: /srv}}]
`},
	{name: "recursiveReadOnly on a writable mount", refuse: "recursiveReadOnly", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, volumeMounts: [{name: host, mountPath: /x, recursiveReadOnly: Enabled}]}]
  volumes: [{name: host, hostPath: {path: /srv}}]
`},
	{name: "recursiveReadOnly with propagation", refuse: "recursiveReadOnly", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, volumeMounts: [{name: host, mountPath: /x, readOnly: true, recursiveReadOnly: Enabled, mountPropagation: HostToContainer}]}]
  volumes: [{name: host, hostPath: {path: /srv}}]
`},
	{name: "subPathExpr", manifest: `
metadata: {name: web}
spec:
  containers:
  - name: c
    image: busybox:1.36
    env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    volumeMounts: [{name: logs, mountPath: /logs, subPathExpr: 'pods/$(POD)'}]
  volumes: [{name: logs, hostPath: {path: /var/log/apps}}]
`, check: func(t *testing.T, p *Pod) {
		subs := p.SubPaths["c"]
		if len(subs) != 1 || subs[0].Path != "pods/web" || subs[0].Volume != "/var/log/apps" {
			t.Fatalf("subPaths %+v, want pods/web of /var/log/apps", subs)
		}
		if ms := configOf(p, "c").Mounts; len(ms) != 1 || ms[0].HostPath != subs[0].Target {
			t.Errorf("mounts %v: want the subPath's target", ms)
		}
	}},
	{name: "subPathExpr climbing out", refuse: "subPathExpr", manifest: `
metadata: {name: p}
spec:
  containers:
  - name: c
    image: busybox:1.36
    env: [{name: UP, value: ".."}]
    volumeMounts: [{name: logs, mountPath: /logs, subPathExpr: '$(UP)/etc'}]
  volumes: [{name: logs, hostPath: {path: /var/log/apps}}]
`},
	{name: "subPath and subPathExpr", refuse: "subPathExpr", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, volumeMounts: [{name: logs, mountPath: /logs, subPath: a, subPathExpr: b}]}]
  volumes: [{name: logs, hostPath: {path: /var/log/apps}}]
`},
	{name: "bindMountOptions", refuse: "bindMountOptions", manifest: `
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox:1.36, volumeMounts: [{name: logs, mountPath: /logs, bindMountOptions: [nosuid]}]}]
  volumes: [{name: logs, hostPath: {path: /var/log/apps}}]
`},
}

func TestConvertSecurityFields(t *testing.T) {
	// The cases' host has no AppArmor (TestConvertAppArmorLocalhost is one with it).
	old := appArmorEnabled
	appArmorEnabled = func() bool { return false }
	defer func() { appArmorEnabled = old }()
	for _, tc := range securityCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := convertYAML(t, tc.manifest)
			if tc.refuse != "" {
				if err == nil {
					t.Fatalf("accepted; want an error naming %q", tc.refuse)
				}
				if !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("error %q does not name %q", err, tc.refuse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

// TestConvertAppArmorLocalhost: with AppArmor on the host, a Localhost profile goes to the runtime,
// which applies it, and RuntimeDefault too (the runtime's default profile).
func TestConvertAppArmorLocalhost(t *testing.T) {
	old := appArmorEnabled
	appArmorEnabled = func() bool { return true }
	defer func() { appArmorEnabled = old }()
	p, err := convertYAML(t, `
metadata: {name: p, annotations: {container.apparmor.security.beta.kubernetes.io/d: localhost/k8s-d}}
spec:
  securityContext: {appArmorProfile: {type: Localhost, localhostProfile: k8s-pod}}
  containers:
  - {name: c, image: busybox:1.36}
  - {name: d, image: busybox:1.36}
  - {name: e, image: busybox:1.36, securityContext: {appArmorProfile: {type: Localhost, localhostProfile: k8s-e}}}
`)
	if err != nil {
		t.Fatal(err)
	}
	// The kubelet's precedence: the container's field, its annotation, the pod's field.
	for n, want := range map[string]string{"c": "k8s-pod", "d": "k8s-d", "e": "k8s-e"} {
		ap := configOf(p, n).Linux.SecurityContext.Apparmor
		if !isProfile(ap, runtime.SecurityProfile_Localhost) || ap.GetLocalhostRef() != want {
			t.Errorf("%s: apparmor %v, want Localhost %s", n, ap, want)
		}
	}
	p, err = convertYAML(t, `
metadata: {name: p, annotations: {container.apparmor.security.beta.kubernetes.io/d: runtime/default}}
spec:
  securityContext: {appArmorProfile: {type: RuntimeDefault}}
  containers: [{name: c, image: b}, {name: d, image: b}]
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"c", "d"} {
		if ap := configOf(p, n).Linux.SecurityContext.Apparmor; ap == nil || !isProfile(ap, runtime.SecurityProfile_RuntimeDefault) {
			t.Errorf("%s: apparmor %v, want RuntimeDefault", n, ap)
		}
	}
}

// fieldSamples are a value for every field of the security structs of a manifest (by JSON name):
// TestConvertDropsNoSecurityField sets each and checks that it changes the converted pod or is
// refused, so that a field added to k8s.io/api later fails here until it is honoured or refused.
var (
	podSecuritySamples = map[string]string{
		"seLinuxOptions": "{level: s0}", "windowsOptions": "{runAsUserName: x}", "runAsUser": "5",
		"runAsGroup": "5", "runAsNonRoot": "true", "supplementalGroups": "[5]",
		"supplementalGroupsPolicy": "Strict", "fsGroup": "5", "sysctls": "[{name: kernel.shm_rmid_forced, value: '1'}]",
		"fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": "{type: RuntimeDefault}",
		"appArmorProfile": "{type: RuntimeDefault}", "seLinuxChangePolicy": "Recursive",
	}
	containerSecuritySamples = map[string]string{
		"capabilities": "{add: [NET_ADMIN]}", "privileged": "true", "seLinuxOptions": "{type: spc_t}",
		"windowsOptions": "{runAsUserName: x}", "runAsUser": "5", "runAsGroup": "5", "runAsNonRoot": "true",
		"readOnlyRootFilesystem": "true", "allowPrivilegeEscalation": "false", "procMount": "Unmasked",
		"seccompProfile": "{type: RuntimeDefault}", "appArmorProfile": "{type: RuntimeDefault}",
	}
	volumeMountSamples = map[string]string{
		"name": "", "mountPath": "", // in every mount
		"readOnly": "true", "recursiveReadOnly": "Enabled", "subPath": "a", "mountPropagation": "HostToContainer",
		"subPathExpr": "a", "bindMountOptions": "[nosuid]",
	}
)

func jsonNames(v any) []string {
	var out []string
	typ := reflect.TypeOf(v)
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func TestConvertDropsNoSecurityField(t *testing.T) {
	for _, s := range []struct {
		what    string
		v       any
		samples map[string]string
	}{{"pod securityContext", corev1.PodSecurityContext{}, podSecuritySamples},
		{"container securityContext", corev1.SecurityContext{}, containerSecuritySamples},
		{"volumeMount", corev1.VolumeMount{}, volumeMountSamples}} {
		for _, n := range jsonNames(s.v) {
			if _, ok := s.samples[n]; !ok {
				t.Errorf("%s.%s has no sample: decide whether Convert honours or refuses it, then add it", s.what, n)
			}
		}
	}
	base := func(podSC, ctrSC, mount string) string {
		return fmt.Sprintf(`
metadata: {name: p}
spec:
  securityContext: {%s}
  containers:
  - name: c
    image: busybox:1.36
    securityContext: {%s}
    volumeMounts: [{name: v, mountPath: /v%s}]
  volumes: [{name: v, hostPath: {path: /srv}}]
`, podSC, ctrSC, mount)
	}
	baseline, err := convertYAML(t, base("", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what, field, m string) {
		t.Helper()
		p, err := convertYAML(t, m)
		if err != nil {
			if !strings.Contains(err.Error(), field) {
				t.Errorf("%s.%s: refused with an error that does not name it: %v", what, field, err)
			}
			return
		}
		if samePod(baseline, p) {
			t.Errorf("%s.%s: silently dropped (the converted pod is the same as without it)", what, field)
		}
	}
	for f, v := range podSecuritySamples {
		check("pod securityContext", f, base(f+": "+v, "", ""))
	}
	for f, v := range containerSecuritySamples {
		check("container securityContext", f, base("", f+": "+v, ""))
	}
	for f, v := range volumeMountSamples {
		if v != "" {
			check("volumeMount", f, base("", "", ", "+f+": "+v))
		}
	}
	check("spec", "hostUsers", strings.Replace(base("", "", ""), "spec:\n", "spec:\n  hostUsers: false\n", 1))
}

// samePod tells whether two converted pods would run the same.
func samePod(a, b *Pod) bool {
	if !proto.Equal(a.Spec.Sandbox, b.Spec.Sandbox) || len(allConfigs(a)) != len(allConfigs(b)) {
		return false
	}
	bc := allConfigs(b)
	for i, c := range allConfigs(a) {
		if !proto.Equal(c, bc[i]) {
			return false
		}
	}
	return reflect.DeepEqual(a.SubPaths, b.SubPaths) && reflect.DeepEqual(a.EmptyDirs, b.EmptyDirs) &&
		reflect.DeepEqual(a.FSGroup, b.FSGroup) && a.FSGroupChangePolicy == b.FSGroupChangePolicy
}
