//go:build integration

package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v8/crit"
	criucore "github.com/checkpoint-restore/go-criu/v8/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/mnt"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/checkpointarchive"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// editCheckpointImages rewrites the images of the checkpoint archive src matching pattern (all
// of one magic) into a new archive, changing each entry with edit.
func editCheckpointImages[M proto.Message](t *testing.T, src, pattern, magicName string, newMsg func() M, edit func(M)) string {
	t.Helper()
	dir := t.TempDir()
	if err := checkpointarchive.Extract(context.Background(), src, dir, 0); err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob(filepath.Join(dir, checkpointarchive.ImagesDir, pattern))
	if len(paths) == 0 {
		t.Fatalf("no %s images in the checkpoint", pattern)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := criu.SplitCRIUImage(b, magicName)
		if err != nil {
			t.Fatal(err)
		}
		img := &crit.CriuImage{Magic: magicName}
		for _, e := range entries {
			m := newMsg()
			if err := proto.Unmarshal(e, m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			img.Entries = append(img.Entries, &crit.CriuEntry{Message: m})
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		err = crit.New(nil, f, "", false, false).Encode(img)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "edited.tar")
	if _, err := checkpointarchive.Write(dir, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func editCheckpointCores(t *testing.T, src string, edit func(*criucore.CoreEntry)) string {
	return editCheckpointImages(t, src, "core-*.img", "CORE", func() *criucore.CoreEntry { return &criucore.CoreEntry{} }, edit)
}

// TestRestoreChecksCRIUImages checkpoints a container running with RuntimeDefault seccomp, the
// kubelet's masked and read-only paths and the default capabilities. CreateContainer refuses
// (InvalidArgument, nothing left) the archive for a request that drops every capability, and
// archives edited to restore the processes with CAP_SYS_ADMIN, without their seccomp filter or
// with a writable /proc/sys; the unedited archive restores for the checkpointed container's own
// settings, its pid 1 with runc's filter, capabilities and mounts (issue 19, finding 2).
func TestRestoreChecksCRIUImages(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	requireCRIU(t, ctx)
	// The kubelet's defaults: RuntimeDefault seccomp, its masked and read-only paths.
	confined := func(cfg *runtime.ContainerConfig) *runtime.ContainerConfig {
		sc := ownPid(cfg).Linux.SecurityContext
		sc.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
		sc.MaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
		sc.ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
		return cfg
	}
	src, srcLogs := e.podWithLogs("img-src")
	id := e.createStart(src.ID, confined(ctrCfg("counter", "sh", "-c", printCounter)))
	waitCounts(t, filepath.Join(srcLogs, "counter.log"), 10)
	status := func(id string) string {
		t.Helper()
		res, err := e.rt.ExecSync(ctx, id, []string{"sh", "-c", "grep -E '^(CapBnd|CapEff|Seccomp|NoNewPrivs):' /proc/1/status; " +
			"grep ' /proc/sys ' /proc/1/mountinfo | cut -d' ' -f5,6"}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(string(res.Stdout)), " ")
	}
	srcStatus := status(id)
	if !strings.Contains(srcStatus, "Seccomp: 2") {
		t.Fatalf("source container's pid 1 is not filtered: %s", srcStatus)
	}
	loc := filepath.Join(t.TempDir(), "counter.tar")
	if err := e.rt.CheckpointContainer(ctx, id, loc, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.removePod(src.ID)

	// The real creds plus CAP_SYS_ADMIN (a capability CRIU itself has, so that it can set it);
	// the real seccomp state turned off.
	sysAdmin := editCheckpointCores(t, loc, func(c *criucore.CoreEntry) {
		cr := c.GetThreadCore().GetCreds()
		for _, set := range [][]uint32{cr.CapBnd, cr.CapPrm, cr.CapEff} {
			set[0] |= 1 << 21 // CAP_SYS_ADMIN
		}
	})
	noSeccomp := editCheckpointCores(t, loc, func(c *criucore.CoreEntry) {
		c.ThreadCore.SeccompMode = criucore.SeccompMode_disabled.Enum()
	})
	// The read-only bind of /proc/sys made writable (as root, the way to the host's
	// core_pattern).
	procSysRW := editCheckpointImages(t, loc, "mountpoints-*.img", "MNTS", func() *mnt.MntEntry { return &mnt.MntEntry{} },
		func(m *mnt.MntEntry) {
			if m.GetMountpoint() == "/proc/sys" {
				m.Flags = proto.Uint32(m.GetFlags() &^ criu.MsRdonly)
			}
		})
	dst, dstLogs := e.podWithLogs("img-dst")
	before, _ := os.ReadDir(e.rt.containersRoot())
	restoreCfg := func(name, archive string, drop bool) *runtime.ContainerConfig {
		cfg := confined(&runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name},
			Image: &runtime.ImageSpec{Image: archive}, LogPath: name + ".log"})
		if drop {
			cfg.Linux.SecurityContext.Capabilities = &runtime.Capability{DropCapabilities: []string{"ALL"}}
		}
		return cfg
	}
	for _, c := range []struct {
		name, archive string
		drop          bool
		want          string
	}{
		{"drop-all", loc, true, "bounding capabilities CAP_CHOWN"},
		{"sys-admin", sysAdmin, false, "bounding capabilities CAP_SYS_ADMIN"},
		{"no-seccomp", noSeccomp, false, "no seccomp filter"},
		{"proc-sys-rw", procSysRW, false, "a writable bind of /proc/sys"},
	} {
		rid, err := e.rt.CreateContainer(ctx, dst.ID, restoreCfg(c.name, c.archive, c.drop))
		if err == nil {
			// Without the check: what CRIU makes of the archive.
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			msg := "its pid 1: "
			if err := e.rt.StartContainer(sctx, rid); err != nil {
				msg = "its start: " + err.Error()
			} else {
				msg += status(rid)
			}
			cancel()
			t.Errorf("%s archive: CreateContainer accepted it (%s; the request's: %s)", c.name, msg, map[bool]string{true: "no capabilities", false: srcStatus}[c.drop])
			_ = e.rt.StopContainer(ctx, rid, 0)
			_ = e.rt.RemoveContainer(ctx, rid)
			continue
		}
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s archive: %v, want InvalidArgument naming %q", c.name, err, c.want)
		}
		t.Logf("%s archive refused: %v", c.name, err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if ctrs, err := e.rt.ListContainers(ctx, &legacy.ContainerFilter{SandboxID: dst.ID}); err != nil || len(ctrs) != 0 {
		t.Fatalf("containers left by the refused restores: %v %v", ctrs, err)
	}
	if after, _ := os.ReadDir(e.rt.containersRoot()); len(after) != len(before) {
		t.Fatalf("container dirs left by the refused restores: %d, %d before", len(after), len(before))
	}

	// The real checkpoint, for the checkpointed container's settings: restored, with runc's
	// filter and capabilities.
	t0 := time.Now()
	rid, err := e.rt.CreateContainer(ctx, dst.ID, restoreCfg("counter-restored", loc, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rt.StartContainer(ctx, rid); err != nil {
		t.Fatal(err)
	}
	t.Logf("restored in %v", time.Since(t0))
	waitCounts(t, filepath.Join(dstLogs, "counter-restored.log"), 5)
	if got := status(rid); got != srcStatus {
		t.Fatalf("restored pid 1: %s, checkpointed: %s", got, srcStatus)
	}
}
