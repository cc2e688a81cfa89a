//go:build integration

package standalone

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"golang.org/x/sys/unix"
)

// TestStandaloneSecurityContext runs the security fields of a manifest on a real containerd and
// runc: a pod with seccompProfile RuntimeDefault runs its container under seccomp (Seccomp: 2 in
// /proc/self/status; its sibling that asks for Unconfined has 0), with /proc/sys read-only (the
// kubelet's read-only paths), the fsGroup among its groups and its emptyDir group-owned by the
// fsGroup with setgid (what it writes there inherits the group); a pod with hostUsers: false runs
// in a user namespace of the range the manager gave it, its emptyDir idmapped (what its root
// writes is owned by 0 on the disk). Before the fix the first pod's container ran with Seccomp: 0,
// a writable /proc/sys and no fsGroup, and the second in the host's user namespace.
func TestStandaloneSecurityContext(t *testing.T) {
	if os.Getenv("CRI_SHIM_INTEGRATION") == "" {
		t.Fatal("CRI_SHIM_INTEGRATION is not set: run through make integration")
	}
	e := newITEnv(t, legacy.NewBackoff(time.Second, 2*time.Second, nil), legacy.ContainerGCPolicy{MinAge: time.Hour, MaxPerPodContainer: -1, MaxContainers: -1})
	// The pod's unprivileged host IDs must be able to reach what runc mounts for it (README, User
	// namespaces): the test's dir is 0700 from MkdirTemp.
	os.Chmod(e.dir, 0o711)
	e.apply("confined", `
metadata: {name: confined}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {seccompProfile: {type: RuntimeDefault}, fsGroup: 1234}
  containers:
  - name: main
    image: busybox:1.37.0
    command: [sh, -c, 'grep -E "^(Seccomp|Groups):" /proc/self/status > /data/main.tmp; grep " /proc/sys " /proc/mounts >> /data/main.tmp; echo x > /data/made; mv /data/main.tmp /data/main; exec sleep 3600']
    volumeMounts: [{name: data, mountPath: /data}]
  - name: free
    image: busybox:1.37.0
    securityContext: {seccompProfile: {type: Unconfined}}
    command: [sh, -c, 'grep "^Seccomp:" /proc/self/status > /data/free.tmp; mv /data/free.tmp /data/free; exec sleep 3600']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
`)
	e.apply("userns", `
metadata: {name: userns}
spec:
  terminationGracePeriodSeconds: 1
  hostUsers: false
  containers:
  - name: main
    image: busybox:1.37.0
    command: [sh, -c, 'cat /proc/self/uid_map > /data/r.tmp; id -u >> /data/r.tmp; echo x > /data/mine; mv /data/r.tmp /data/result; exec sleep 3600']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
`)
	volume := func(pod string) string {
		p, _ := ParseManifest([]byte("metadata: {name: " + pod + "}"))
		return filepath.Join(e.dir, "volumes", string(PodUID(p)), "volumes", "data")
	}
	read := func(pod, file string) string {
		var b []byte
		e.wait(pod+"'s "+file, 120*time.Second, func() bool {
			var err error
			b, err = os.ReadFile(filepath.Join(volume(pod), file))
			return err == nil
		})
		return string(b)
	}
	main, free := read("confined", "main"), read("confined", "free")
	t.Logf("confined/main:\n%sconfined/free:\n%s", main, free)
	if !strings.Contains(main, "Seccomp:\t2") {
		t.Errorf("the container of a pod with seccompProfile RuntimeDefault is not under seccomp filter mode:\n%s", main)
	}
	if !strings.Contains(free, "Seccomp:\t0") {
		t.Errorf("the container asking for Unconfined: %q", free)
	}
	var groups, procSys string
	for _, l := range strings.Split(main, "\n") {
		if strings.HasPrefix(l, "Groups:") {
			groups = l
		}
		if strings.Contains(l, " /proc/sys ") {
			procSys = l
		}
	}
	if !strings.Contains(" "+strings.Join(strings.Fields(groups), " ")+" ", " 1234 ") {
		t.Errorf("fsGroup 1234 not among the container's groups: %q", groups)
	}
	if f := strings.Fields(procSys); len(f) < 4 || !strings.HasPrefix(f[3], "ro") {
		t.Errorf("/proc/sys is not read-only in the container: %q", procSys)
	}
	var st unix.Stat_t
	if err := unix.Stat(volume("confined"), &st); err != nil || st.Gid != 1234 || st.Mode&0o7777 != 0o2777 {
		t.Errorf("emptyDir: gid %d mode %04o (%v), want 1234 and 2777", st.Gid, st.Mode&0o7777, err)
	}
	if err := unix.Stat(filepath.Join(volume("confined"), "made"), &st); err != nil || st.Gid != 1234 {
		t.Errorf("a file the container made in the emptyDir: gid %d (%v), want the fsGroup's", st.Gid, err)
	}

	result := read("userns", "result")
	t.Logf("userns/main:\n%s", result)
	if f := strings.Fields(result); len(f) != 4 || f[0] != "0" || f[1] != "1073741824" || f[2] != "65536" || f[3] != "0" {
		t.Errorf("uid_map and id -u in the hostUsers: false pod: %q, want 0 1073741824 65536 and 0", result)
	}
	if err := unix.Stat(filepath.Join(volume("userns"), "mine"), &st); err != nil || st.Uid != 0 {
		t.Errorf("a file the pod's root made in its idmapped emptyDir: uid %d (%v), want 0 on the disk", st.Uid, err)
	}

	for _, n := range []string{"confined", "userns"} {
		os.Remove(filepath.Join(e.dir, "manifests", n+".yaml"))
	}
	e.wait("the pods removed", 60*time.Second, func() bool {
		list, _ := e.rt.ListPodSandbox(context.Background(), nil)
		return len(list) == 0
	})
}
