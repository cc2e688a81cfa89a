package standalone

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
)

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func running(fake *legacytest.FakeRuntime, name string) *legacy.ContainerDetails {
	for _, c := range fake.FakeContainers() {
		if c.Name == name && c.State == legacy.ContainerStateRunning {
			return c
		}
	}
	return nil
}

// TestManagerLifecycle runs a manifest on the FakeRuntime: the pod starts, an edit replaces the
// changed container, a crashed container restarts, and removing the manifest removes the pod and
// its record.
func TestManagerLifecycle(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	fake := legacytest.NewFakeRuntime()
	m, err := New(Options{Dir: filepath.Join(dir, "manifests"), StateDir: state, VolumeRoot: filepath.Join(dir, "vol"),
		PodLogRoot: filepath.Join(dir, "logs"), Runtime: fake, ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the manifests dir", func() bool { _, err := os.Stat(filepath.Join(dir, "manifests")); return err == nil })

	manifest := filepath.Join(dir, "manifests", "web.yaml")
	write := func(s string) {
		if err := WriteFileAtomic(manifest, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("metadata: {name: web}\nspec:\n  containers:\n  - {name: a, image: busybox:1, args: [sleep, '1']}\n  - {name: b, image: busybox:1}\n  volumes: [{name: d, emptyDir: {}}]\n")
	waitFor(t, "both containers", func() bool { return running(fake, "a") != nil && running(fake, "b") != nil })
	sb := fake.FakeContainers()[0].SandboxID
	if st, _ := fake.PodSandboxStatus(ctx, sb, false); st.Labels[LabelOwner] != OwnerValue || st.Name != "web" || st.Namespace != "default" {
		t.Fatalf("sandbox %+v", st)
	}
	a0, b0 := running(fake, "a"), running(fake, "b")

	write("metadata: {name: web}\nspec:\n  containers:\n  - {name: a, image: busybox:1, args: [sleep, '2']}\n  - {name: b, image: busybox:1}\n  volumes: [{name: d, emptyDir: {}}]\n")
	waitFor(t, "a replaced", func() bool { c := running(fake, "a"); return c != nil && c.ID != a0.ID })
	if a := running(fake, "a"); a.Config.Args[1] != "2" || a.Attempt != 1 {
		t.Fatalf("new a: %v attempt %d", a.Config.Args, a.Attempt)
	}
	if b := running(fake, "b"); b == nil || b.ID != b0.ID {
		t.Fatal("b was replaced too")
	}

	// A broken edit keeps the pod as it was.
	a1 := running(fake, "a")
	write("metadata: {name: web}\nspec:\n  containers:\n  - {name: a, image: busybox:1, bogus: 1}\n")
	time.Sleep(200 * time.Millisecond)
	if a := running(fake, "a"); a == nil || a.ID != a1.ID || running(fake, "b") == nil {
		t.Fatal("an invalid manifest took the pod down")
	}

	// A crash: restarted at once (the first restart does not back off).
	fake.StopContainer(ctx, b0.ID.ID, 0)
	waitFor(t, "b restarted", func() bool { c := running(fake, "b"); return c != nil && c.ID != b0.ID })

	// Readiness is recorded right after the sync that started the container.
	var rec *PodRecord
	waitFor(t, "both ready", func() bool {
		var err error
		rec, err = ReadRecord(state, "default", "web")
		return err == nil && rec.Ready["a"] && rec.Ready["b"]
	})
	var reasons []string
	for _, e := range rec.Events {
		reasons = append(reasons, e.Reason)
	}
	if len(reasons) < 6 || reasons[0] != "Created" || reasons[1] != "Started" {
		t.Errorf("events %v", reasons)
	}
	if _, err := os.Stat(filepath.Join(dir, "vol", rec.UID, "volumes", "d")); err != nil {
		t.Errorf("emptyDir: %v", err)
	}

	os.Remove(manifest)
	waitFor(t, "the pod removed", func() bool { list, _ := fake.ListPodSandbox(ctx, nil); return len(list) == 0 })
	waitFor(t, "the record removed", func() bool { _, err := ReadRecord(state, "default", "web"); return os.IsNotExist(err) })
	if _, err := os.Stat(filepath.Join(dir, "vol", rec.UID)); !os.IsNotExist(err) {
		t.Errorf("volumes left: %v", err)
	}
}

// TestManagerRemovesUnknownStandalonePods: a standalone pod left from before (no manifest) goes;
// a pod without the owner label (a kubelet's) stays.
func TestManagerRemovesUnknownStandalonePods(t *testing.T) {
	dir := t.TempDir()
	fake := legacytest.NewFakeRuntime()
	ctx := context.Background()
	pod, _ := ParseManifest([]byte("metadata: {name: old}\nspec: {containers: [{name: c, image: b}]}"))
	p, _ := Convert(pod, "", ConvertOptions{})
	orphan, _ := fake.RunPodSandbox(ctx, p.Spec.Sandbox, "")
	other := p.Spec.Sandbox
	other.Labels = map[string]string{"io.kubernetes.pod.name": "kubelets"}
	other.Metadata.Uid = "kubelet-uid"
	kept, _ := fake.RunPodSandbox(ctx, other, "")
	m, _ := New(Options{Dir: dir, Runtime: fake})
	m.scan(ctx)
	if _, ok := fake.Sandboxes[orphan]; ok {
		t.Error("the orphaned standalone pod was kept")
	}
	if _, ok := fake.Sandboxes[kept]; !ok {
		t.Error("a pod of another owner was removed")
	}
}

func TestEnsureDirRefusesWritableByOthers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	if err := EnsureDir(dir); err == nil {
		t.Error("a world-writable manifests dir was accepted")
	}
}

// TestManagerAdoptsRunningPods: a new manager (a restarted daemon) on pods already running from
// the same manifest changes nothing.
func TestManagerAdoptsRunningPods(t *testing.T) {
	dir := t.TempDir()
	fake := legacytest.NewFakeRuntime()
	WriteFileAtomic(filepath.Join(dir, "web.yaml"), []byte("metadata: {name: web}\nspec: {containers: [{name: a, image: busybox:1}]}\n"), 0o600)
	run := func() func() {
		m, err := New(Options{Dir: dir, Runtime: fake, ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); m.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	stop := run()
	waitFor(t, "a", func() bool { return running(fake, "a") != nil })
	stop()
	before := running(fake, "a")
	fake.ClearCalls()
	stop = run()
	time.Sleep(300 * time.Millisecond)
	stop()
	if a := running(fake, "a"); a == nil || a.ID != before.ID {
		t.Fatalf("the running container was replaced: %+v", a)
	}
	// Nothing was started, created, stopped or killed again.
	for _, err := range []error{
		fake.AssertStartedPods(nil), fake.AssertKilledPods(nil),
		fake.AssertCreatedContainers(nil), fake.AssertStartedContainers(nil), fake.AssertStoppedContainers(nil),
	} {
		if err != nil {
			t.Errorf("a restarted manager: %v", err)
		}
	}
	for _, c := range fake.CalledFunctions {
		if c == "RemovePodSandbox" {
			t.Fatalf("a restarted manager removed a sandbox (%v)", fake.CalledFunctions)
		}
	}
}

// fakeGC is a GCRuntime listing fixed containers.
type fakeGC struct{ cs []legacy.GCContainer }

func (f *fakeGC) GCContainers(context.Context) ([]legacy.GCContainer, error) { return f.cs, nil }
func (f *fakeGC) SandboxExists(context.Context, string) bool                 { return true }
func (f *fakeGC) RemoveGCContainer(context.Context, legacy.GCContainer) error {
	return nil
}

// TestGCViewOnlyStandalonePods: the standalone pods' GC sees their containers only, never a
// kubelet's.
func TestGCViewOnlyStandalonePods(t *testing.T) {
	m, _ := New(Options{Dir: t.TempDir(), Runtime: legacytest.NewFakeRuntime()})
	pod, _ := ParseManifest([]byte("metadata: {name: web}\nspec: {containers: [{name: a, image: b}]}"))
	p, _ := Convert(pod, "", ConvertOptions{})
	w := &worker{done: make(chan struct{})}
	w.current.Store(p)
	m.workers[p.Key()] = w
	view := &podsGCView{m: m, rt: &fakeGC{cs: []legacy.GCContainer{
		{ID: "mine", Name: "a", PodUID: p.UID}, {ID: "kubelets", Name: "a", PodUID: "other"}, {ID: "nobody"},
	}}}
	got, _ := view.GCContainers(context.Background())
	if len(got) != 1 || got[0].ID != "mine" {
		t.Fatalf("view %v", got)
	}
	gc, _ := legacy.NewContainerGC(view, legacy.ContainerGCPolicy{MaxPerPodContainer: 0, MaxContainers: -1})
	plan, _ := gc.Plan(context.Background())
	if len(plan) != 1 || plan[0].ID != "mine" {
		t.Errorf("GC plan %v, want only the standalone pod's dead container", plan)
	}
}
