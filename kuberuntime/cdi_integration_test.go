//go:build integration

package kuberuntime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cdiEnv is an env whose runtime injects CDI devices from a spec dir of the test's.
func cdiEnv(t *testing.T) (*env, string) {
	e := newEnv(t, "")
	dir := filepath.Join(e.dir, "cdi")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.opts.EnableCDI, e.opts.CDISpecDirs = true, []string{filepath.Join(e.dir, "cdi-etc"), dir} // the first one missing
	e.rt = e.newRuntime()
	return e, dir
}

// checkCDIDevice asserts container id sees writeCDISpec's device name: the device node (writable:
// the cgroup allows it), FOO=bar and the mounted file.
func (e *env) checkCDIDevice(id, name string) {
	e.t.Helper()
	script := fmt.Sprintf(`test -c /dev/vendor-%[1]s && echo ok > /dev/vendor-%[1]s && echo "FOO=$FOO" && cat /etc/vendor-%[1]s`, name)
	res, err := e.rt.ExecSync(context.Background(), id, []string{"sh", "-c", script}, 10*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	want := "FOO=bar\nhello from " + name + "\n"
	if res.ExitCode != 0 || string(res.Stdout) != want {
		e.t.Fatalf("in the container: exit %d, stdout %q, stderr %q; want %q", res.ExitCode, res.Stdout, res.Stderr, want)
	}
}

// containerLeftovers lists what a failed create of the container named name may leave: its
// containerd container, a container in the store, dirs under the containers' root and state
// dirs not in before, snapshots not in before.
func (e *env) containerLeftovers(sandboxID, name string, before []string) []string {
	e.t.Helper()
	ctx := e.rt.withNS(context.Background())
	var out []string
	cs, err := e.client.Containers(ctx, fmt.Sprintf(`labels.%q==%q`, LabelContainerName, name))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range cs {
		out = append(out, "containerd container "+c.ID())
	}
	list, err := e.rt.ListContainers(ctx, &legacy.ContainerFilter{SandboxID: sandboxID})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range list {
		if c.Config.GetMetadata().GetName() == name {
			out = append(out, "listed container "+c.ID.ID)
		}
	}
	for _, s := range e.containerFiles() {
		if !slices.Contains(before, s) {
			out = append(out, s)
		}
	}
	return out
}

// containerFiles lists the container dirs and the snapshots there are.
func (e *env) containerFiles() []string {
	e.t.Helper()
	var out []string
	for _, d := range []string{e.rt.containersRoot(), e.rt.containersState()} {
		ents, _ := os.ReadDir(d)
		for _, ent := range ents {
			out = append(out, "dir "+filepath.Join(d, ent.Name()))
		}
	}
	ctx := e.rt.withNS(context.Background())
	if err := e.rt.client.SnapshotService(snapshotterOr("")).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		out = append(out, "snapshot "+info.Name)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestCDIDevices: a CDI device asked for by the CRI field or by an annotation is in the container
// (device node, env, mount); an unknown or malformed one fails CreateContainer with
// InvalidArgument naming it and leaves nothing; a spec written after the start is found.
func TestCDIDevices(t *testing.T) {
	e, dir := cdiEnv(t)
	writeCDISpec(t, dir, "foo")
	ctx := context.Background()
	sb, _ := e.podWithLogs("cdi")

	// The CRI field.
	cfg := ctrCfg("field", "sleep", "3600")
	cfg.CDIDevices = []*runtime.CDIDevice{{Name: "vendor.example.com/device=foo"}}
	e.checkCDIDevice(e.createStart(sb.ID, cfg), "foo")

	// An annotation.
	cfg = ctrCfg("annotated", "sleep", "3600")
	cfg.Annotations = map[string]string{"cdi.k8s.io/test": "vendor.example.com/device=foo"}
	e.checkCDIDevice(e.createStart(sb.ID, cfg), "foo")

	// An unknown device.
	before := e.containerFiles()
	cfg = ctrCfg("later", "sleep", "3600")
	cfg.CDIDevices = []*runtime.CDIDevice{{Name: "vendor.example.com/device=later"}}
	_, err := e.rt.CreateContainer(ctx, sb.ID, cfg)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "vendor.example.com/device=later") {
		t.Fatalf("create with an unknown CDI device: %v, want InvalidArgument naming it", err)
	}
	t.Logf("unknown device: %v", err)
	if left := e.containerLeftovers(sb.ID, "later", before); len(left) > 0 {
		t.Fatalf("the failed create left: %v", left)
	}
	// A malformed name.
	bad := ctrCfg("malformed", "sleep", "3600")
	bad.Annotations = map[string]string{"cdi.k8s.io/test": "later"}
	if _, err := e.rt.CreateContainer(ctx, sb.ID, bad); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `"later"`) {
		t.Fatalf("create with a malformed CDI device name: %v, want InvalidArgument naming it", err)
	}
	if left := e.containerLeftovers(sb.ID, "malformed", before); len(left) > 0 {
		t.Fatalf("the failed create left: %v", left)
	}
	// The spec appears (a driver writes it): the same request succeeds.
	writeCDISpec(t, dir, "later")
	e.checkCDIDevice(e.createStart(sb.ID, cfg), "later")
}

// TestCDIFromNRIPlugin: a CDI device an NRI plugin adds at CreateContainer is in the container; an
// unknown one fails the create, naming it, and leaves nothing.
func TestCDIFromNRIPlugin(t *testing.T) {
	e, dir := cdiEnv(t)
	writeCDISpec(t, dir, "nri")
	sock := e.startNRI()
	p := newTestPlugin()
	p.cdiDevices = map[string]string{"plugged": "vendor.example.com/device=nri", "unplugged": "vendor.example.com/device=absent"}
	e.connect(p, sock, "cdi", "10")
	waitCh(t, p.syncDone, "Synchronize")
	ctx := context.Background()
	sb, _ := e.podWithLogs("cdi-nri")

	e.checkCDIDevice(e.createStart(sb.ID, ctrCfg("plugged", "sleep", "3600")), "nri")

	before := e.containerFiles()
	_, err := e.rt.CreateContainer(ctx, sb.ID, ctrCfg("unplugged", "sleep", "3600"))
	if err == nil || !strings.Contains(err.Error(), "vendor.example.com/device=absent") {
		t.Fatalf("create with a plugin's unknown CDI device: %v, want an error naming it", err)
	}
	t.Logf("plugin's unknown device: %v", err)
	if left := e.containerLeftovers(sb.ID, "unplugged", before); len(left) > 0 {
		t.Fatalf("the failed create left: %v", left)
	}
}
