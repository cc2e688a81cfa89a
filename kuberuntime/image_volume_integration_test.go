//go:build integration

package kuberuntime

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/moby/sys/mountinfo"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const testImageVolumeImage = "gcr.io/k8s-staging-cri-tools/test-image-tag:test"

func imageVolumeMount(image, sub string) *runtime.Mount {
	return &runtime.Mount{
		ContainerPath: "/mnt/image-volume", Readonly: true, ImageSubPath: sub,
		Image: &runtime.ImageSpec{Image: image, UserSpecifiedImage: testImageVolumeImage},
	}
}

// imageVolumeLeftovers lists what an image volume of container id may leave: its lease, its
// snapshots, mounts under its root dir.
func (e *env) imageVolumeLeftovers(rt *ContainerdRuntime, id string) []string {
	e.t.Helper()
	ctx := rt.withNS(context.Background())
	var out []string
	ls, err := rt.client.LeasesService().List(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range ls {
		if l.ID == imageVolumeLeaseID(id) {
			out = append(out, "lease "+l.ID)
		}
	}
	_ = rt.client.SnapshotService(snapshotterOr("")).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if strings.HasPrefix(info.Name, "cri-shim-image-volume/"+id+"/") {
			out = append(out, "snapshot "+info.Name)
		}
		return nil
	})
	root := filepath.Join(rt.containersRoot(), id)
	infos, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(root))
	for _, m := range infos {
		out = append(out, "mount "+m.Mountpoint)
	}
	return out
}

func TestImageVolumes(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	sb, _ := e.podWithLogs("imgvol")
	imageID, err := e.rt.images.PullImage(ctx, legacy.ImageSpec{Image: testImageVolumeImage}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(id string, cmd ...string) (string, int32) {
		t.Helper()
		res, err := e.rt.ExecSync(ctx, id, cmd, 10*time.Second)
		if err != nil {
			t.Fatalf("exec %v: %v", cmd, err)
		}
		return string(res.Stdout) + string(res.Stderr), res.ExitCode
	}

	t.Run("whole image, read-only, digest in status", func(t *testing.T) {
		cfg := ctrCfg("whole", "sleep", "3600")
		cfg.Mounts = []*runtime.Mount{imageVolumeMount(imageID, "")}
		t0 := time.Now()
		id := e.createStart(sb.ID, cfg)
		t.Logf("create+start with an image volume: %v", time.Since(t0))
		if out, code := exec(id, "ls", "-A", "/mnt/image-volume/bin/sh", "/mnt/image-volume/test-image-tag-test"); code != 0 {
			t.Fatalf("image content not visible: %d %s", code, out)
		}
		if out, code := exec(id, "touch", "/mnt/image-volume/x"); code == 0 || !strings.Contains(out, "Read-only") {
			t.Fatalf("write to the image volume: %d %s", code, out)
		}
		if out, code := exec(id, "/mnt/image-volume/bin/ls", "/mnt/image-volume"); code != 0 {
			t.Fatalf("binary of the image volume does not run (noexec?): %d %s", code, out)
		}
		st, err := e.rt.ContainerStatus(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		var ref string
		for _, m := range st.Mounts {
			if m.GetContainerPath() == "/mnt/image-volume" {
				ref = m.GetImage().GetImageRef()
			}
		}
		if ref != imageID {
			t.Fatalf("image_ref in status mounts %q, want %q (mounts %v)", ref, imageID, st.Mounts)
		}
		if got := e.imageVolumeLeftovers(e.rt, id); len(got) != 3 {
			t.Fatalf("a mounted image volume has a lease, a snapshot and a mount, got %v", got)
		}

		// A restart of the daemon finds the volume again; one whose mount vanished (a reboot)
		// is mounted again.
		target := filepath.Join(e.rt.containersRoot(), id, imageVolumesDir, "0")
		e.rt.Close()
		if err := unmountImageVolume(target); err != nil {
			t.Fatal(err)
		}
		e.rt = e.newRuntime()
		if ok, _ := mountinfo.Mounted(target); !ok {
			t.Fatal("image volume not mounted again after a restart")
		}
		st, err = e.rt.ContainerStatus(ctx, id, false)
		if err != nil || st.State != legacy.ContainerStateRunning {
			t.Fatalf("after restart: %v %+v", err, st)
		}
		if err := e.rt.StopContainer(ctx, id, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		// RemoveContainer answers before the deletion is over (container_remove.go).
		if err := e.rt.removals().wait(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if got := e.imageVolumeLeftovers(e.rt, id); len(got) != 0 {
			t.Fatalf("left after RemoveContainer: %v", got)
		}
	})

	t.Run("sub path", func(t *testing.T) {
		cfg := ctrCfg("sub", "sleep", "3600")
		cfg.Mounts = []*runtime.Mount{imageVolumeMount(testImageVolumeImage, "etc")}
		id := e.createStart(sb.ID, cfg)
		if out, code := exec(id, "ls", "/mnt/image-volume/passwd"); code != 0 {
			t.Fatalf("sub path content: %d %s", code, out)
		}
		if _, code := exec(id, "ls", "/mnt/image-volume/etc/passwd"); code == 0 {
			t.Fatal("the whole image is mounted, not its sub path")
		}
		if err := e.rt.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		// RemoveContainer answers before the deletion is over (container_remove.go).
		if err := e.rt.removals().wait(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if got := e.imageVolumeLeftovers(e.rt, id); len(got) != 0 {
			t.Fatalf("left after RemoveContainer: %v", got)
		}
	})

	t.Run("rejected", func(t *testing.T) {
		for name, tc := range map[string]struct {
			m    *runtime.Mount
			want func(error) bool
		}{
			"missing sub path": {imageVolumeMount(imageID, "not-existing"), errdefs.IsInvalidArgument},
			"sub path out":     {imageVolumeMount(imageID, "../../../../etc"), errdefs.IsInvalidArgument},
			"read-write":       {func() *runtime.Mount { m := imageVolumeMount(imageID, ""); m.Readonly = false; return m }(), errdefs.IsInvalidArgument},
			"image not pulled": {imageVolumeMount("gcr.io/k8s-staging-cri-tools/test-image-never-pulled:1", ""), errdefs.IsNotFound},
		} {
			cfg := ctrCfg("rejected-"+strings.ReplaceAll(name, " ", "-"), "sleep", "3600")
			cfg.Mounts = []*runtime.Mount{tc.m}
			id, err := e.rt.CreateContainer(ctx, sb.ID, cfg)
			if err == nil || !tc.want(err) || !strings.Contains(err.Error(), "ImageVolumeMountFailed") {
				t.Errorf("%s: created %q, %v", name, id, err)
			}
		}
		// Nothing of the failed creations is left: no lease, snapshot or mount of image volumes.
		ls, err := e.rt.client.LeasesService().List(e.rt.withNS(ctx), `labels."`+labelImageVolumesOf+`"`)
		if err != nil || len(ls) != 0 {
			t.Fatalf("leases left: %v %v", ls, err)
		}
		infos, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(e.rt.containersRoot()))
		for _, m := range infos {
			if strings.Contains(m.Mountpoint, imageVolumesDir) {
				t.Errorf("mount left: %s", m.Mountpoint)
			}
		}
	})

	t.Run("crash leftovers are cleaned at start-up", func(t *testing.T) {
		// What a daemon killed in the middle of CreateContainer leaves: a mounted view and its
		// lease, under the root dir of a container containerd does not know.
		id := newID()
		rootDir := filepath.Join(e.rt.containersRoot(), id)
		cfg := ctrCfg("crashed", "true")
		cfg.Mounts = []*runtime.Mount{imageVolumeMount(imageID, "")}
		nctx := e.rt.withNS(ctx)
		if _, _, err := e.rt.mountImageVolumes(nctx, id, rootDir, snapshotterOr(""), cfg); err != nil {
			t.Fatal(err)
		}
		if got := e.imageVolumeLeftovers(e.rt, id); len(got) != 3 {
			t.Fatalf("before restart: %v", got)
		}
		e.rt.Close()
		e.rt = e.newRuntime()
		if got := e.imageVolumeLeftovers(e.rt, id); len(got) != 0 {
			t.Fatalf("left after a restart: %v", got)
		}
	})
}
