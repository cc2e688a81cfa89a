//go:build integration

package legacy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const counterScript = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"

// TestCheckpoint checkpoints running containers and pods. On a host whose CRIU works it takes
// real checkpoints; where it does not (Debian's CRIU 3.17.1 on kernels from 6.13 on), it checks
// that every request says so with FailedPrecondition, and that the path down to runc and CRIU
// fails cleanly: the containers keep running, unpaused, and nothing is left behind.
func TestCheckpoint(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	saved := checkCRIU
	t.Cleanup(func() { checkCRIU = saved })
	sb, _ := e.podWithLogs("ckpt")
	other := e.run(podCfg("ckpt-other"))
	id := e.createStart(sb.ID, ctrCfg("counter", "sh", "-c", counterScript))
	id2 := e.createStart(sb.ID, ctrCfg("sleeper", "sleep", "3600"))
	done := e.createStart(sb.ID, ctrCfg("done", "true"))
	e.waitExited(e.rt, done)
	count := func(id string) int {
		t.Helper()
		res, err := e.rt.ExecSync(ctx, id, []string{"cat", "/tmp/count"}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout)))
		if err != nil {
			t.Fatalf("count %q: %v", res.Stdout, err)
		}
		return n
	}
	stillRunning := func(what string) {
		t.Helper()
		for _, cid := range []string{id, id2} {
			task, err := e.rt.loadTask(e.rt.withNS(ctx), cid)
			if err != nil {
				t.Fatal(err)
			}
			st, err := task.Status(e.rt.withNS(ctx))
			if err != nil || st.Status != containerd.Running {
				t.Fatalf("%s: task of %s is %v (%v)", what, cid, st.Status, err)
			}
		}
		a := count(id)
		time.Sleep(350 * time.Millisecond)
		if b := count(id); b <= a {
			t.Fatalf("%s: the counter stopped at %d", what, a)
		}
	}
	dir := t.TempDir()
	loc := filepath.Join(dir, "counter.tar")

	// Requests that are wrong whatever the host.
	for name, tc := range map[string]struct {
		id, loc string
		want    func(error) bool
	}{
		"relative location": {id, "counter.tar", errdefs.IsInvalidArgument},
		"missing directory": {id, filepath.Join(dir, "no", "c.tar"), errdefs.IsInvalidArgument},
		"unknown container": {"unknown", loc, errdefs.IsNotFound},
		"exited container":  {done, loc, errdefs.IsFailedPrecondition},
	} {
		if err := e.rt.CheckpointContainer(ctx, tc.id, tc.loc, 0); !tc.want(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	podOut := t.TempDir()
	notEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(notEmpty, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		sandbox, out string
		ids          []string
		opts         map[string]string
		want         func(error) bool
	}{
		"no containers":          {sb.ID, podOut, nil, nil, errdefs.IsInvalidArgument},
		"twice the same":         {sb.ID, podOut, []string{id, id}, nil, errdefs.IsInvalidArgument},
		"container of other pod": {other.ID, podOut, []string{id}, nil, errdefs.IsInvalidArgument},
		"exited container":       {sb.ID, podOut, []string{id, done}, nil, errdefs.IsFailedPrecondition},
		"output not empty":       {sb.ID, notEmpty, []string{id}, nil, errdefs.IsInvalidArgument},
		"output missing":         {sb.ID, filepath.Join(dir, "missing"), []string{id}, nil, errdefs.IsInvalidArgument},
		"relative output":        {sb.ID, "out", []string{id}, nil, errdefs.IsInvalidArgument},
		"unknown option":         {sb.ID, podOut, []string{id}, map[string]string{"tcp-established": "true"}, errdefs.IsInvalidArgument},
		"unknown sandbox":        {"unknown", podOut, []string{id}, nil, errdefs.IsNotFound},
	} {
		if err := e.rt.CheckpointPod(ctx, tc.sandbox, tc.out, tc.ids, tc.opts); !tc.want(err) {
			t.Errorf("pod checkpoint, %s: %v", name, err)
		}
	}

	info := probeCRIU(ctx)
	t.Logf("CRIU %q at %q: %v", info.Version, info.Path, info.Err)
	if info.Err != nil {
		t.Run("CRIU does not work here", func(t *testing.T) {
			err := e.rt.CheckpointContainer(ctx, id, loc, 0)
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), info.Err.Error()) {
				t.Fatalf("checkpoint: %v", err)
			}
			if err := e.rt.CheckpointPod(ctx, sb.ID, podOut, []string{id, id2}, nil); !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("pod checkpoint: %v", err)
			}
			// Past the check, down to runc and CRIU: the failure comes back with CRIU's words,
			// and the containers carry on.
			checkCRIU = func() criuInfo { return criuInfo{Path: info.Path, Version: info.Version} }
			defer func() { checkCRIU = saved }()
			t0 := time.Now()
			err = e.rt.CheckpointContainer(ctx, id, loc, 30*time.Second)
			t.Logf("checkpoint through runc: %v after %v", err, time.Since(t0))
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), "criu") {
				t.Fatalf("checkpoint with a broken CRIU: %v", err)
			}
			stillRunning("after a failed checkpoint")
			if _, err := os.Stat(loc); !os.IsNotExist(err) {
				t.Fatalf("something at the location: %v", err)
			}
			err = e.rt.CheckpointPod(ctx, sb.ID, podOut, []string{id, id2}, nil)
			if err == nil {
				t.Fatal("pod checkpoint with a broken CRIU succeeded")
			}
			t.Logf("pod checkpoint through runc: %v", err)
			stillRunning("after a failed pod checkpoint")
			if entries, _ := os.ReadDir(podOut); len(entries) != 0 {
				t.Fatalf("partial pod checkpoint left: %v", entries)
			}
			for _, cid := range []string{id, id2} {
				matches, _ := filepath.Glob(filepath.Join(e.rt.containersRoot(), cid, "checkpoint-*"))
				if len(matches) != 0 {
					t.Fatalf("work dirs left: %v", matches)
				}
			}
		})
	} else {
		t.Run("checkpoint", func(t *testing.T) {
			t0 := time.Now()
			if err := e.rt.CheckpointContainer(ctx, id, loc, 0); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(loc)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("checkpoint of the counter: %d bytes in %v", fi.Size(), time.Since(t0))
			got := tarEntries(t, loc)
			var cfg checkpointConfigFile
			if err := json.Unmarshal([]byte(got[checkpointConfig]), &cfg); err != nil || cfg.ID != id || cfg.Name != "counter" {
				t.Fatalf("config.dump %+v %v", cfg, err)
			}
			if _, ok := got["checkpoint/inventory.img"]; !ok || got[checkpointSpec] == "" {
				t.Fatalf("archive entries %v", keys(got))
			}
			stillRunning("after a checkpoint")
			if err := e.rt.CheckpointPod(ctx, sb.ID, podOut, []string{id, id2}, nil); err != nil {
				t.Fatal(err)
			}
			stillRunning("after a pod checkpoint")
			for _, f := range []string{checkpointPodConfig, "counter/checkpoint/inventory.img", "sleeper/config.dump"} {
				if _, err := os.Stat(filepath.Join(podOut, f)); err != nil {
					t.Error(err)
				}
			}
		})
	}

	t.Run("restore requests", func(t *testing.T) {
		cfgs := []*runtime.ContainerConfig{ctrCfg("counter", "sh"), ctrCfg("sleeper", "sleep")}
		req := func(path string, mut func(*RestorePodRequest)) RestorePodRequest {
			r := RestorePodRequest{CheckpointPath: path, Config: podCfg("restored"), ContainerConfigs: cfgs}
			if mut != nil {
				mut(&r)
			}
			return r
		}
		fakePod := t.TempDir()
		b, _ := json.Marshal(podCheckpointFile{SandboxID: sb.ID, Containers: map[string]string{"counter": "counter", "sleeper": "sleeper"}})
		if err := os.WriteFile(filepath.Join(fakePod, checkpointPodConfig), b, 0o600); err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]RestorePodRequest{
			"not a checkpoint": req(t.TempDir(), nil),
			"relative path":    req("ckpt", nil),
			"unknown handler":  req(fakePod, func(r *RestorePodRequest) { r.RuntimeHandler = "nope" }),
			"unknown option":   req(fakePod, func(r *RestorePodRequest) { r.Options = map[string]string{"a": "b"} }),
			"missing a container": req(fakePod, func(r *RestorePodRequest) {
				r.ContainerConfigs = cfgs[:1]
			}),
			"unknown container": req(fakePod, func(r *RestorePodRequest) {
				r.ContainerConfigs = []*runtime.ContainerConfig{cfgs[0], ctrCfg("other", "sh")}
			}),
			"duplicate names": req(fakePod, func(r *RestorePodRequest) {
				r.ContainerConfigs = []*runtime.ContainerConfig{cfgs[0], cfgs[0]}
			}),
		} {
			if _, _, err := e.rt.RestorePod(ctx, r); !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: %v", name, err)
			}
		}
		// Past the check of CRIU, the containers' checkpoints are missing.
		_, _, err := e.rt.RestorePod(ctx, req(fakePod, nil))
		if info.Err != nil && !errdefs.IsFailedPrecondition(err) || info.Err == nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("restore: %v", err)
		}
		// CreateContainer with a checkpoint archive as its image (CRI-O's and containerd's way).
		src := t.TempDir()
		if err := os.WriteFile(filepath.Join(src, checkpointConfig), []byte(`{}`), 0o600); err != nil {
			t.Fatal(err)
		}
		archive := filepath.Join(t.TempDir(), "c.tar")
		if _, err := writeTarArchive(src, archive); err != nil {
			t.Fatal(err)
		}
		cfg := ctrCfg("from-archive", "sh")
		cfg.Image = &runtime.ImageSpec{Image: archive}
		// Past the check of CRIU, its config.dump names no image.
		_, err = e.rt.CreateContainer(ctx, sb.ID, cfg)
		if info.Err != nil && !errdefs.IsFailedPrecondition(err) || info.Err == nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("create from a checkpoint archive: %v", err)
		}
	})
}
