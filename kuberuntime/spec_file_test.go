package kuberuntime

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// specFileRuntime is a runtime without containerd (a nil client: any round trip would panic),
// with one ready sandbox and one running container whose root dirs are under t's temp dir.
func specFileRuntime(t testing.TB) (*ContainerdRuntime, *podSandbox, *podContainer) {
	dir := t.TempDir()
	r := &ContainerdRuntime{sandboxes: newSandboxStore(), opts: Options{RootDir: dir, StateDir: filepath.Join(dir, "state")}}
	sb := &podSandbox{
		meta: sandboxMetadata{ID: "sb1", CreatedAt: time.Unix(1, 0)},
		config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
			Linux: &runtime.LinuxPodSandboxConfig{}},
		state: legacy.SandboxStateReady, pid: 10,
	}
	r.sandboxes.add(sb)
	c := &podContainer{
		meta:    containerMetadata{ID: "c1", SandboxID: "sb1", CreatedAt: time.Unix(2, 0)},
		config:  &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "c"}, Image: &runtime.ImageSpec{Image: "busybox"}},
		rootDir: filepath.Join(dir, "containers", "c1"),
		state:   legacy.ContainerStateRunning, pid: 11,
	}
	r.ctrs().store.add(c)
	for _, d := range []string{c.rootDir, r.SandboxRootDir("sb1")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r, sb, c
}

func infoSpec(t testing.TB, info map[string]string) (map[string]any, bool) {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(info["info"]), &v); err != nil {
		t.Fatalf("verbose info: %v: %s", err, info["info"])
	}
	s, ok := v["runtimeSpec"].(map[string]any)
	return s, ok
}

// TestVerboseStatusFromSpecFile: the verbose statuses carry the spec file written at creation,
// with no containerd round trip (the runtime has no client).
func TestVerboseStatusFromSpecFile(t *testing.T) {
	r, sb, c := specFileRuntime(t)
	ctx := context.Background()
	writeSpecFile(c.rootDir, []byte(`{"ociVersion":"1.2.0","hostname":"ctr","linux":{"cgroupsPath":"/kubepods/c1"}}`), false)
	writeSpecFile(r.SandboxRootDir(sb.meta.ID), []byte(`{"ociVersion":"1.2.0","hostname":"pod"}`), false)

	st, err := r.ContainerStatus(ctx, "c1", true)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := infoSpec(t, st.Info); !ok || s["hostname"] != "ctr" || s["linux"].(map[string]any)["cgroupsPath"] != "/kubepods/c1" {
		t.Fatalf("container runtimeSpec: %v", st.Info["info"])
	}
	ss, err := r.PodSandboxStatus(ctx, "sb1", true)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := infoSpec(t, ss.Info); !ok || s["hostname"] != "pod" {
		t.Fatalf("sandbox runtimeSpec: %v", ss.Info["info"])
	}
	// The non-verbose status has no info; no temporary files are left behind.
	if st, _ := r.ContainerStatus(ctx, "c1", false); st.Info != nil {
		t.Fatalf("non-verbose info: %v", st.Info)
	}
	if m, _ := filepath.Glob(filepath.Join(c.rootDir, ".*tmp*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

// TestVerboseStatusWithoutSpecFile: without a file and without containerd, the verbose status
// still answers, without a runtime spec; a damaged file is not served.
func TestVerboseStatusWithoutSpecFile(t *testing.T) {
	r, _, c := specFileRuntime(t)
	ctx := context.Background()
	st, err := r.ContainerStatus(ctx, "c1", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := infoSpec(t, st.Info); ok {
		t.Fatalf("runtimeSpec out of nowhere: %v", st.Info["info"])
	}
	if err := os.WriteFile(filepath.Join(c.rootDir, specFile), []byte(`{"ociVersion":`), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = r.ContainerStatus(ctx, "c1", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := infoSpec(t, st.Info); ok {
		t.Fatalf("damaged spec served: %v", st.Info["info"])
	}
}

// TestWriteSpecFileKeep: the status's fallback write keeps a file already there (written by a
// concurrent update); the creation's and the update's replace it.
func TestWriteSpecFileKeep(t *testing.T) {
	dir := t.TempDir()
	read := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, specFile))
		return string(b)
	}
	writeSpecFile(dir, []byte(`{"a":1}`), true)
	writeSpecFile(dir, []byte(`{"a":2}`), true)
	if got := read(); got != `{"a":1}` {
		t.Fatalf("keep replaced the file: %s", got)
	}
	writeSpecFile(dir, []byte(`{"a":3}`), false)
	if got := read(); got != `{"a":3}` {
		t.Fatalf("replace: %s", got)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}

// BenchmarkVerboseContainerStatus is the verbose ContainerStatus of a container whose spec file is
// there (a real spec of ~5 KB).
func BenchmarkVerboseContainerStatus(b *testing.B) {
	r, _, c := specFileRuntime(b)
	ctx := namespaces.WithNamespace(context.Background(), "bench")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"})
	if err != nil {
		b.Fatal(err)
	}
	s.Process.Env = append(s.Process.Env, "KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443", "HOSTNAME=pod")
	spec, err := json.Marshal(s)
	if err != nil {
		b.Fatal(err)
	}
	writeSpecFile(c.rootDir, spec, false)
	b.ReportAllocs()
	for b.Loop() {
		st, err := r.ContainerStatus(ctx, "c1", true)
		if err != nil || len(st.Info["info"]) < len(spec)/2 {
			b.Fatalf("%v %d", err, len(st.Info["info"]))
		}
	}
}

func TestWithRawField(t *testing.T) {
	for _, c := range []struct{ obj, want string }{
		{`{}`, `{"runtimeSpec":{"a":1}}`},
		{`{"pid":1}`, `{"pid":1,"runtimeSpec":{"a":1}}`},
		{`null`, `null`},
	} {
		got := string(withRawField([]byte(c.obj), "runtimeSpec", []byte(`{"a":1}`)))
		if got != c.want || (c.obj != "null" && !json.Valid([]byte(got))) {
			t.Errorf("withRawField(%s) = %s, want %s", c.obj, got, c.want)
		}
	}
}
