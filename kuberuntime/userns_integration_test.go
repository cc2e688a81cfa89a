//go:build integration

package kuberuntime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestUserNamespacePod runs a pod in a user namespace of its own (mode POD, uids and gids 0..65535
// mapped to 300000..365535) on the runc hack/setup.sh builds: the pause process and both
// containers share that namespace, the rootfs is idmapped (image files owned by 0 inside, new files
// owned by the mapped root on the host), so are the pod's files and a CRI mount that asks for it.
func TestUserNamespacePod(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	if f := e.rt.HandlerFeatures(ctx, ""); !f.UserNamespaces {
		t.Fatalf("the default handler (%s) does not advertise user namespaces; run hack/setup.sh (runc ≥ 1.2): %+v",
			RuncBinary(e.rt.handlers[""]), f)
	}
	const hostID, size = 300000, 65536
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: hostID, Length: size}}
	cfg := podCfg("userns")
	cfg.LogDirectory = filepath.Join(e.dir, "logs", "userns")
	cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
		UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping},
	}}
	sb := e.run(cfg)
	if _, err := e.rt.images.PullImage(ctx, legacy.ImageSpec{Image: testBusybox}, nil, nil); err != nil {
		t.Fatalf("pull %s: %v", testBusybox, err)
	}
	wantMap := fmt.Sprintf("0 %d %d", hostID, size)
	for _, f := range []string{"uid_map", "gid_map"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", sb.Pid, f))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(strings.Fields(string(b)), " "); got != wantMap {
			t.Fatalf("pause %s = %q, want %q", f, got, wantMap)
		}
	}
	podUserns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", sb.Pid))
	if err != nil {
		t.Fatal(err)
	}

	// A host dir owned by root, mounted twice: idmapped (owned by 0 inside) and plain (nobody).
	vol := filepath.Join(e.dir, "vol")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctrNS := &runtime.NamespaceOption{UsernsOptions: cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions}
	c1 := ctrCfg("c1", "sleep", "300")
	c1.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{NamespaceOptions: ctrNS}
	c1.Mounts = []*runtime.Mount{
		{ContainerPath: "/idmapped", HostPath: vol, UidMappings: mapping, GidMappings: mapping},
		{ContainerPath: "/plain", HostPath: vol},
	}
	id1 := e.createStart(sb.ID, c1)
	// The second container says nothing of user namespaces: it joins its pod's all the same.
	id2 := e.createStart(sb.ID, ctrCfg("c2", "sleep", "300"))

	rt := e.rt
	exec := func(id string, cmd string) string {
		t.Helper()
		res, err := rt.ExecSync(ctx, id, []string{"sh", "-c", cmd}, 10*time.Second)
		if err != nil {
			t.Fatalf("exec %q: %v", cmd, err)
		}
		if res.ExitCode != 0 {
			t.Fatalf("exec %q: exit %d: %s", cmd, res.ExitCode, res.Stderr)
		}
		return strings.TrimSpace(string(res.Stdout))
	}
	for _, id := range []string{id1, id2} {
		if got := strings.Join(strings.Fields(exec(id, "cat /proc/self/uid_map")), " "); got != wantMap {
			t.Fatalf("container uid_map = %q, want %q", got, wantMap)
		}
		if got := strings.Join(strings.Fields(exec(id, "cat /proc/self/gid_map")), " "); got != wantMap {
			t.Fatalf("container gid_map = %q, want %q", got, wantMap)
		}
		if got := exec(id, "readlink /proc/self/ns/user"); got != podUserns {
			t.Fatalf("container user namespace %s, the pause process's %s", got, podUserns)
		}
		// Image files, the pod's files: owned by root inside.
		if got := exec(id, "stat -c %u:%g /bin/busybox /etc /etc/hosts /etc/hostname /etc/resolv.conf | sort -u"); got != "0:0" {
			t.Fatalf("rootfs and pod files owned by %q inside, want 0:0", got)
		}
		if got := exec(id, "id -u; touch /new && stat -c %u:%g /new"); got != "0\n0:0" {
			t.Fatalf("root writing its rootfs: %q", got)
		}
	}
	if got := exec(id1, "stat -c %u:%g /idmapped/f; stat -c %u /plain/f"); got != "0:0\n65534" {
		t.Fatalf("idmapped and plain mount owners: %q, want 0:0 and 65534", got)
	}
	if got := exec(id1, "echo y > /idmapped/g && cat /idmapped/g"); got != "y" {
		t.Fatalf("write to the idmapped mount: %q", got)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vol, "g"), &st); err != nil || st.Uid != 0 || st.Gid != 0 {
		t.Fatalf("file written through the idmapped mount: uid %d gid %d (%v), want 0:0 on the host", st.Uid, st.Gid, err)
	}
	// On the host, what the pod's root wrote belongs to the mapped root.
	d1, err := rt.ContainerStatus(ctx, id1, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/root/new", d1.Pid), &st); err != nil || st.Uid != hostID || st.Gid != hostID {
		t.Fatalf("/new seen from the host: uid %d gid %d (%v), want %d", st.Uid, st.Gid, err, hostID)
	}

	// After a restart of the runtime, a new container still joins the pod's user namespace.
	e.rt.Close()
	rt = e.newRuntime()
	id3, err := rt.CreateContainer(ctx, sb.ID, ctrCfg("c3", "sleep", "300"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, id3); err != nil {
		t.Fatal(err)
	}
	if got := exec(id3, "readlink /proc/self/ns/user; stat -c %u /bin/busybox"); got != podUserns+"\n0" {
		t.Fatalf("container created after a restart: %q, want %s and 0", got, podUserns)
	}

	// Removing the pod unpins its user namespace.
	if res := rt.StopPodSandbox(ctx, sb.ID); res.Error() != nil {
		t.Fatal(res.Error())
	}
	if err := rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	for _, m := range testutil.MountsUnder(e.dir) {
		if strings.HasSuffix(m, "/userns") {
			t.Fatalf("user namespace still pinned at %s", m)
		}
	}
}

// TestUserNamespaceRejected: options the runtime cannot honour fail before anything is made.
func TestUserNamespaceRejected(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: 300000, Length: 65536}}
	for name, u := range map[string]*runtime.NamespaceOption{
		"container": {UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}},
		"two":       {UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: append(mapping, mapping[0]), Gids: mapping}},
		"hostnet":   {Network: runtime.NamespaceMode_NODE, UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping}},
	} {
		cfg := podCfg("rejected-" + name)
		cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: u}
		id, res := e.rt.RunPodSandbox(ctx, cfg, "")
		if res.Error() == nil || id != "" {
			t.Fatalf("%s: pod %q ran", name, id)
		}
	}
	if list, _ := e.rt.ListPodSandbox(ctx, nil); len(list) != 0 {
		t.Fatalf("rejected pods left sandboxes: %+v", list)
	}
}
