//go:build integration

package kuberuntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/checkpointarchive"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
	"github.com/cri-shim/cri-shim/legacy"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const counterScript = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"

// TestCheckpoint checkpoints running containers and pods. Whatever the host, it checks the
// requests that are wrong, and that a probe that found CRIU broken makes every request
// FailedPrecondition with its reason. Then it probes the host's CRIU for real: where it works, it
// takes real checkpoints (which must succeed); where it cannot (the probe says why: e.g. CRIU 3.17.1
// on kernels from 6.13 on), that part is skipped with the probe's reason. No CRIU at all fails.
func TestCheckpoint(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	saved := criu.CheckCRIU
	t.Cleanup(func() { criu.CheckCRIU = saved })
	sb, _ := e.podWithLogs("ckpt")
	other := e.run(podCfg("ckpt-other"))
	id := e.createStart(sb.ID, ctrCfg("counter", "sh", "-c", counterScript))
	id2 := e.createStart(sb.ID, ctrCfg("sleeper", "sleep", "3600"))
	done := e.createStart(sb.ID, ctrCfg("done", "true"))
	e.waitExited(e.rt, done)
	// count reads the counter's file; the script rewrites it in place (truncate, then write), so a
	// read can land between the two and see it empty: read again then.
	count := func(id string) int {
		t.Helper()
		var out []byte
		for range 20 {
			res, err := e.rt.ExecSync(ctx, id, []string{"cat", "/tmp/count"}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if out = bytes.TrimSpace(res.Stdout); len(out) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		n, err := strconv.Atoi(string(out))
		if err != nil {
			t.Fatalf("count %q: %v", out, err)
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

	// Host-independent: a probe that found CRIU broken makes every checkpoint and restore request
	// FailedPrecondition with its reason, before anything is paused or written.
	t.Run("without a working CRIU", func(t *testing.T) {
		reason := errors.New("criu dump of a test process did not end within 20s (its log ends with: x)")
		criu.CheckCRIU = func() criu.CriuInfo { return criu.CriuInfo{Path: "/usr/sbin/criu", Version: "4.1", Err: reason} }
		defer func() { criu.CheckCRIU = saved }()
		wantReason := func(what string, err error) {
			t.Helper()
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), reason.Error()) {
				t.Errorf("%s: %v, want FailedPrecondition with the probe's reason", what, err)
			}
		}
		wantReason("checkpoint", e.rt.CheckpointContainer(ctx, id, loc, 0))
		wantReason("pod checkpoint", e.rt.CheckpointPod(ctx, sb.ID, podOut, []string{id, id2}, nil))
		fakePod := t.TempDir()
		b, _ := json.Marshal(checkpointarchive.PodConfig{SandboxID: sb.ID, Containers: map[string]string{"counter": "counter"}})
		if err := os.WriteFile(filepath.Join(fakePod, checkpointarchive.PodDump), b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := e.rt.RestorePod(ctx, legacy.RestorePodRequest{CheckpointPath: fakePod, Config: podCfg("restored"),
			ContainerConfigs: []*runtime.ContainerConfig{ctrCfg("counter", "sh")}})
		wantReason("restore pod", err)
		cfg := ctrCfg("from-archive", "sh")
		cfg.Image = &runtime.ImageSpec{Image: emptyCheckpointArchive(t)}
		_, err = e.rt.CreateContainer(ctx, sb.ID, cfg)
		wantReason("create from a checkpoint archive", err)
		stillRunning("after refused checkpoints")
		if _, err := os.Stat(loc); !os.IsNotExist(err) {
			t.Fatalf("something at the location: %v", err)
		}
		if entries, _ := os.ReadDir(podOut); len(entries) != 0 {
			t.Fatalf("pod checkpoint output: %v", entries)
		}
	})

	// The host's CRIU, probed for real (a dump and restore of a process of the probe's own).
	info := criu.ProbeCRIU(ctx)
	t.Logf("CRIU %q at %q, probed in %v: %v", info.Version, info.Path, info.Took, info.Err)
	if info.Missing {
		t.Fatalf("%v", info.Err)
	}
	criu.CheckCRIU = func() criu.CriuInfo { return info }
	t.Run("checkpoint", func(t *testing.T) {
		if info.Err != nil {
			t.Skipf("CRIU cannot checkpoint on this host (the probe's reason): %v", info.Err)
		}
		t0 := time.Now()
		if err := e.rt.CheckpointContainer(ctx, id, loc, 0); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(loc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("checkpoint of the counter: %d bytes in %v", fi.Size(), time.Since(t0))
		cs, err := checkpointarchive.Open(loc)
		if err != nil || cs.Config.ID != id || cs.Config.Name != "counter" {
			t.Fatalf("config.dump %+v %v", cs, err)
		}
		// Installed, it has its CRIU images (checkpoint/inventory.img) and spec.dump.
		tree := filepath.Join(t.TempDir(), "tree")
		if err := cs.Install(ctx, tree, 0); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(tree, checkpointarchive.SpecDump)); err != nil || len(b) == 0 {
			t.Fatalf("spec.dump: %d bytes, %v", len(b), err)
		}
		stillRunning("after a checkpoint")
		t0 = time.Now()
		if err := e.rt.CheckpointPod(ctx, sb.ID, podOut, []string{id, id2}, nil); err != nil {
			t.Fatal(err)
		}
		t.Logf("checkpoint of the pod (2 containers): %v", time.Since(t0))
		stillRunning("after a pod checkpoint")
		for _, f := range []string{checkpointarchive.PodDump, "counter/checkpoint/inventory.img", "sleeper/config.dump"} {
			if _, err := os.Stat(filepath.Join(podOut, f)); err != nil {
				t.Error(err)
			}
		}
	})

	// Requests that are wrong whatever the host's CRIU does (the probe's answer is set to a working
	// CRIU: they fail on their own account).
	criu.CheckCRIU = func() criu.CriuInfo { return criu.CriuInfo{Path: info.Path, Version: info.Version} }
	t.Run("restore requests", func(t *testing.T) {
		cfgs := []*runtime.ContainerConfig{ctrCfg("counter", "sh"), ctrCfg("sleeper", "sleep")}
		req := func(path string, mut func(*legacy.RestorePodRequest)) legacy.RestorePodRequest {
			r := legacy.RestorePodRequest{CheckpointPath: path, Config: podCfg("restored"), ContainerConfigs: cfgs}
			if mut != nil {
				mut(&r)
			}
			return r
		}
		fakePod := t.TempDir()
		b, _ := json.Marshal(checkpointarchive.PodConfig{SandboxID: sb.ID, Containers: map[string]string{"counter": "counter", "sleeper": "sleeper"}})
		if err := os.WriteFile(filepath.Join(fakePod, checkpointarchive.PodDump), b, 0o600); err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]legacy.RestorePodRequest{
			"not a checkpoint": req(t.TempDir(), nil),
			"relative path":    req("ckpt", nil),
			"unknown handler":  req(fakePod, func(r *legacy.RestorePodRequest) { r.RuntimeHandler = "nope" }),
			"unknown option":   req(fakePod, func(r *legacy.RestorePodRequest) { r.Options = map[string]string{"a": "b"} }),
			"missing a container": req(fakePod, func(r *legacy.RestorePodRequest) {
				r.ContainerConfigs = cfgs[:1]
			}),
			"unknown container": req(fakePod, func(r *legacy.RestorePodRequest) {
				r.ContainerConfigs = []*runtime.ContainerConfig{cfgs[0], ctrCfg("other", "sh")}
			}),
			"duplicate names": req(fakePod, func(r *legacy.RestorePodRequest) {
				r.ContainerConfigs = []*runtime.ContainerConfig{cfgs[0], cfgs[0]}
			}),
		} {
			if _, _, err := e.rt.RestorePod(ctx, r); !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: %v", name, err)
			}
		}
		// Past the check of CRIU, the containers' checkpoints are missing.
		if _, _, err := e.rt.RestorePod(ctx, req(fakePod, nil)); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("restore: %v", err)
		}
		// CreateContainer with a checkpoint archive as its image (CRI-O's and containerd's way).
		cfg := ctrCfg("from-archive", "sh")
		cfg.Image = &runtime.ImageSpec{Image: emptyCheckpointArchive(t)}
		// Past the check of CRIU, its config.dump names no image.
		if _, err := e.rt.CreateContainer(ctx, sb.ID, cfg); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("create from a checkpoint archive: %v", err)
		}
	})
}

// criuStandIn fails at once, as CRIU does when it gives up: its error goes where CRIU writes its
// log, the dump.log in runc's --work-path (read from its parent runc's command line; CRIU's own
// output goes nowhere, runc does not read it).
const criuStandIn = `#!/bin/sh
msg="Error (criu-stand-in): this CRIU gives up at once"
work=$(tr '\0' '\n' < /proc/$PPID/cmdline | sed -n '/^--work-path$/{n;p;q}')
[ -n "$work" ] && echo "(00.000100) $msg" >> "$work/dump.log"
echo "$msg" >&2
exit 1
`

// criuThawsAndDies does what a CRIU killed half-way through a dump leaves: it thaws the container's
// freezer cgroup (CRIU does once it holds the tasks with ptrace, and freezes it again only when it
// ends normally), writes an error to its log and dies. %s is the real runc, asked for the
// container's init pid.
const criuThawsAndDies = `#!/bin/sh
args=$(tr '\0' '\n' < /proc/$PPID/cmdline)
root=$(echo "$args" | sed -n '/^--root$/{n;p;q}')
work=$(echo "$args" | sed -n '/^--work-path$/{n;p;q}')
id=$(echo "$args" | tail -n 1)
pid=$(%s --root "$root" state "$id" | sed -n 's/^ *"pid": \([0-9]*\),$/\1/p')
f=$(sed -n 's/^[0-9]*:freezer:\(.*\)$/\1/p' /proc/$pid/cgroup)
if [ -n "$f" ]; then
  echo THAWED > "/sys/fs/cgroup/freezer$f/freezer.state"
else
  echo 0 > "/sys/fs/cgroup$(sed -n 's/^0::\(.*\)$/\1/p' /proc/$pid/cgroup)/cgroup.freeze"
fi
echo "(00.200000) Error (criu-stand-in): killed after thawing the container" >> "$work/dump.log"
kill -9 $$
`

// TestCRIUHangingStandIn is no test: it is the criu of the "criu-hangs" handler of
// TestCheckpointHelperFails (the test binary run again, as criu), with CRI_SHIM_CRIU_HANG_RUNC
// naming the real runc. It seizes the container's init with ptrace, as CRIU does, and hangs.
func TestCRIUHangingStandIn(t *testing.T) {
	runcBin := os.Getenv("CRI_SHIM_CRIU_HANG_RUNC")
	if runcBin == "" {
		return
	}
	goruntime.LockOSThread()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", os.Getppid()))
	if err != nil {
		os.Exit(1)
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	var root string
	for i, a := range args[:len(args)-1] {
		if a == "--root" {
			root = args[i+1]
		}
	}
	out, err := exec.Command(runcBin, "--root", root, "state", args[len(args)-1]).Output()
	var st struct {
		Pid int `json:"pid"`
	}
	if err != nil || json.Unmarshal(out, &st) != nil || unix.PtraceSeize(st.Pid) != nil {
		os.Exit(1)
	}
	time.Sleep(10 * time.Minute)
	os.Exit(1)
}

// TestCheckpointHelperFails checks that a CRIU or runc that fails ends CheckpointContainer and
// CheckpointPod at once, with its own message, and leaves the containers running, not paused, not
// traced, and nothing behind; and that one that hangs ends them at their deadline, killed. It does
// not depend on the host's CRIU: stand-ins are what runc runs (runtime handlers whose runc is a
// wrapper putting a stand-in criu first on runc's PATH), and the runc of another handler fails its
// checkpoint command itself.
func TestCheckpointHelperFails(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	saved := criu.CheckCRIU
	t.Cleanup(func() { criu.CheckCRIU = saved })
	// Past the probe of the host's CRIU: down to runc and the stand-ins.
	criu.CheckCRIU = func() criu.CriuInfo { return criu.CriuInfo{Path: "criu-stand-in", Version: "0"} }
	runc := ResolveRuncBinary("")
	if runc == "" {
		runc = "runc"
	}
	bin := t.TempDir()
	write := func(path, content string) string {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// runcWith is a runc that finds the stand-in criu first on its PATH.
	runcWith := func(name, criuScript string) string {
		dir := filepath.Join(bin, name)
		write(filepath.Join(dir, "criu"), criuScript)
		return write(filepath.Join(bin, "runc-"+name), fmt.Sprintf("#!/bin/sh\nPATH=%s:$PATH exec %s \"$@\"\n", dir, runc))
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const runcMsg = "runc-stand-in: checkpoint refused"
	e.rt.Close()
	e.opts.RuntimeHandlers = []legacy.RuntimeHandler{RuncHandler("runc", ResolveRuncBinary("")),
		RuncHandler("criu-fails", runcWith("criu-fails", criuStandIn)),
		RuncHandler("criu-thaws-and-dies", runcWith("criu-thaws", fmt.Sprintf(criuThawsAndDies, runc))),
		// bash's exec -a: a process named criu, as CRIU is.
		RuncHandler("criu-hangs", runcWith("criu-hangs", fmt.Sprintf(
			"#!/bin/bash\nCRI_SHIM_CRIU_HANG_RUNC=%s exec -a criu %s -test.run='^TestCRIUHangingStandIn$' -- %s\n", runc, self, bin))),
		RuncHandler("runc-fails", write(filepath.Join(bin, "runc-failing-checkpoint"), fmt.Sprintf(
			"#!/bin/sh\nfor a; do [ \"$a\" = checkpoint ] && { echo %q >&2; exit 1; }; done\nexec %s \"$@\"\n", runcMsg, runc))),
	}
	e.rt = e.newRuntime()
	if _, err := e.rt.images.PullImage(ctx, legacy.ImageSpec{Image: testBusybox}, nil, nil); err != nil {
		t.Fatal(err)
	}
	// The hanging stand-ins of this test: their command line ends with its bin dir.
	standInsLeft := func() []int {
		out, _ := exec.Command("pgrep", "-f", "TestCRIUHangingStandIn. -- "+bin+"$").Output()
		var pids []int
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	t.Cleanup(func() {
		for _, pid := range standInsLeft() {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	})

	for _, tc := range []struct {
		handler, want string
		// timeout: the requests' (0: none, CheckpointContainer's default of minutes)
		timeout time.Duration
	}{
		{handler: "criu-fails", want: "Error (criu-stand-in): this CRIU gives up at once"},
		{handler: "criu-thaws-and-dies", want: "Error (criu-stand-in): killed after thawing the container"},
		{handler: "runc-fails", want: runcMsg},
		{handler: "criu-hangs", want: "deadline exceeded", timeout: 2 * time.Second},
	} {
		t.Run(tc.handler, func(t *testing.T) {
			sbID, res := e.rt.RunPodSandbox(ctx, podCfg("ckpt-"+tc.handler), tc.handler)
			if err := res.Error(); err != nil {
				t.Fatal(err)
			}
			id := e.createStart(sbID, ctrCfg("counter", "sh", "-c", counterScript))
			id2 := e.createStart(sbID, ctrCfg("sleeper", "sleep", "3600"))
			running := func(what string) {
				t.Helper()
				for _, cid := range []string{id, id2} {
					task, err := e.rt.loadTask(e.rt.withNS(ctx), cid)
					if err != nil {
						t.Fatal(err)
					}
					if st, err := task.Status(e.rt.withNS(ctx)); err != nil || st.Status != containerd.Running {
						t.Fatalf("%s: task of %s is %q (%v), want running", what, cid, st.Status, err)
					}
					if tracer := tracerPid(int(task.Pid())); tracer != 0 {
						t.Fatalf("%s: the init of %s is traced by %d", what, cid, tracer)
					}
				}
				read := func() string {
					res, err := e.rt.ExecSync(ctx, id, []string{"cat", "/tmp/count"}, 5*time.Second)
					if err != nil {
						t.Fatal(err)
					}
					return string(res.Stdout)
				}
				a := read()
				deadline := time.Now().Add(5 * time.Second)
				for read() == a {
					if time.Now().After(deadline) {
						t.Fatalf("%s: the counter stays at %s", what, a)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			check := func(what string, err error, took time.Duration) {
				t.Helper()
				t.Logf("%s: %v after %v", what, err, took)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%s: %v, want the helper's message %q", what, err, tc.want)
				}
				// At once when the helper failed; at the deadline, plus the clean-up, when it hung.
				// The slack covers a loaded 2-core machine (a criu-fails once took 2.2 s there);
				// what it rules out is waiting for the default deadline, which is minutes.
				if limit := tc.timeout + 10*time.Second; took > limit {
					t.Errorf("%s took %v, want at most %v", what, took, limit)
				}
				// The helper's failure is the whole answer: the resume after it is no failure.
				if strings.Contains(err.Error(), "resume") {
					t.Errorf("%s: %v: a resume error besides the helper's", what, err)
				}
				running("after a failed " + what)
				if left := standInsLeft(); len(left) != 0 {
					t.Errorf("after a failed %s: stand-ins left running: %v", what, left)
				}
			}
			running("before")
			loc := filepath.Join(t.TempDir(), "c.tar")
			t0 := time.Now()
			err := e.rt.CheckpointContainer(ctx, id, loc, tc.timeout)
			check("CheckpointContainer", err, time.Since(t0))
			if _, err := os.Stat(loc); !os.IsNotExist(err) {
				t.Errorf("something at the location: %v", err)
			}

			out := t.TempDir()
			pctx, cancel := context.WithCancel(ctx)
			if tc.timeout > 0 {
				pctx, cancel = context.WithTimeout(ctx, tc.timeout)
			}
			t0 = time.Now()
			err = e.rt.CheckpointPod(pctx, sbID, out, []string{id, id2}, nil)
			cancel()
			check("CheckpointPod", err, time.Since(t0))
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("partial pod checkpoint left: %v", entries)
			}
			for _, cid := range []string{id, id2} {
				if m, _ := filepath.Glob(filepath.Join(e.rt.containersRoot(), cid, "checkpoint-*")); len(m) != 0 {
					t.Errorf("work dirs left: %v", m)
				}
			}
		})
	}
}

// emptyCheckpointArchive writes a checkpoint archive whose config.dump is empty (it names no
// container or image) and returns its path.
func emptyCheckpointArchive(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, checkpointarchive.ConfigDump), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "c.tar")
	if _, err := checkpointarchive.Write(src, archive); err != nil {
		t.Fatal(err)
	}
	return archive
}
