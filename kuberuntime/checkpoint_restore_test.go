package kuberuntime

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/checkpointarchive"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec/containerspectest"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeCheckpointDir writes a container checkpoint tree (config.dump and a CRIU inventory) into dir.
func writeCheckpointDir(t *testing.T, dir string, cfg *runtime.ContainerConfig) {
	t.Helper()
	raw, err := protojson.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(checkpointarchive.Config{ID: "old", Name: cfg.GetMetadata().GetName(), ImageID: "sha256:img",
		RootfsImageName: "busybox:1", ContainerConfig: raw})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, checkpointarchive.ImagesDir), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{checkpointarchive.ConfigDump: b, checkpointarchive.ImagesDir + "/inventory.img": []byte("inv")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRestoreFromArchive(t *testing.T) {
	old := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "counter", Attempt: 3},
		Image:    &runtime.ImageSpec{Image: "busybox:1"},
		Command:  []string{"sh", "-c", "loop"}, WorkingDir: "/w",
		Envs:    []*runtime.KeyValue{{Key: "A", Value: []byte("1")}},
		Labels:  map[string]string{"old": "1"},
		LogPath: "old.log",
		Mounts:  []*runtime.Mount{{ContainerPath: "/old", HostPath: "/tmp"}},
	}
	src := t.TempDir()
	writeCheckpointDir(t, src, old)
	archive := filepath.Join(t.TempDir(), "c.tar")
	if _, err := checkpointarchive.Write(src, archive); err != nil {
		t.Fatal(err)
	}
	if !checkpointarchive.IsArchive(archive) || checkpointarchive.IsArchive(src) || checkpointarchive.IsArchive("busybox:1") {
		t.Fatal("isCheckpointArchive")
	}
	for _, p := range []string{archive, src} {
		cs, err := checkpointarchive.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if cs.Archive != (p == archive) || cs.Config.ImageID != "sha256:img" || cs.ContainerConfig.GetWorkingDir() != "/w" {
			t.Fatalf("%s: %+v", p, cs)
		}
		root := t.TempDir()
		if err := cs.Install(context.Background(), filepath.Join(root, restoreDir), 0); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(root, restoreDir, checkpointarchive.ImagesDir, "inventory.img")); err != nil || string(b) != "inv" {
			t.Fatalf("%s: installed inventory %q %v", p, b, err)
		}
		c := &podContainer{rootDir: root, meta: containerMetadata{Restore: true}}
		if !isRestore(c) {
			t.Fatal("not a restore after install")
		}
	}

	// CreateContainer with the archive: the checkpointed process and image, the request's
	// identity, logs and mounts (which must name the checkpointed container's).
	cs, _ := checkpointarchive.Open(archive)
	req := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "again"}, Image: &runtime.ImageSpec{Image: archive},
		Labels: map[string]string{"new": "1"}, LogPath: "new.log", Mounts: []*runtime.Mount{{ContainerPath: "/old", HostPath: "/srv"}}}
	got, err := archiveRestoreConfig(cs, req)
	if err != nil || got.GetMetadata().GetName() != "again" || got.GetLabels()["new"] != "1" || got.GetLabels()["old"] != "" ||
		got.GetLogPath() != "new.log" || got.GetImage().GetImage() != "sha256:img" || got.GetImage().GetUserSpecifiedImage() != "busybox:1" ||
		strings.Join(got.GetCommand(), " ") != "sh -c loop" || len(got.GetMounts()) != 1 || got.GetMounts()[0].GetHostPath() != "/srv" {
		t.Fatalf("restore config %v %v", got, err)
	}
	req.Mounts = append(req.Mounts, &runtime.Mount{ContainerPath: "/new", HostPath: "/tmp"})
	if got, err := archiveRestoreConfig(cs, req); err != nil || len(got.GetMounts()) != 2 || got.GetMounts()[1].GetContainerPath() != "/new" {
		t.Fatalf("request's mounts not used: %v %v", got.GetMounts(), err)
	}

	// RestorePod's configs must describe the checkpointed process.
	r := &ContainerdRuntime{}
	ok := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "counter"}, Command: []string{"sh", "-c", "loop"},
		Labels: map[string]string{"new": "1"}}
	got, err = r.podRestoreConfig(context.Background(), cs, ok)
	if err != nil || got.GetLabels()["new"] != "1" || got.GetWorkingDir() != "/w" || len(got.GetEnvs()) != 1 || got.GetImage().GetImage() != "sha256:img" {
		t.Fatalf("pod restore config %v %v", got, err)
	}
	for name, cfg := range map[string]*runtime.ContainerConfig{
		"command":     {Metadata: ok.Metadata, Command: []string{"sleep"}},
		"args":        {Metadata: ok.Metadata, Args: []string{"x"}},
		"working_dir": {Metadata: ok.Metadata, WorkingDir: "/other"},
		"environment": {Metadata: ok.Metadata, Envs: []*runtime.KeyValue{{Key: "A", Value: []byte("2")}}},
		"pid namespace": {Metadata: ok.Metadata, Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}}},
		"user": {Metadata: ok.Metadata, Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			RunAsUser: &runtime.Int64Value{Value: 1000}}}},
	} {
		if _, err := r.podRestoreConfig(context.Background(), cs, cfg); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s mismatch: %v", name, err)
		}
	}
}

// hostileCheckpoint is a checkpointed container config that asks for more than any request
// would give it: every capability, a host block device, no seccomp, the host's network and pid
// namespaces, privileged mode and the host's root mounted read-write.
func hostileCheckpoint() *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "evil"},
		Image:    &runtime.ImageSpec{Image: "busybox:1"},
		Command:  []string{"sh", "-c", "loop"}, WorkingDir: "/w",
		Envs:    []*runtime.KeyValue{{Key: "A", Value: []byte("1")}},
		Devices: []*runtime.Device{{ContainerPath: "/dev/sda", HostPath: "/dev/loop0", Permissions: "rwm"}},
		Mounts:  []*runtime.Mount{{ContainerPath: "/host", HostPath: "/"}},
		Linux: &runtime.LinuxContainerConfig{
			Resources: &runtime.LinuxContainerResources{CpuShares: 262144, OomScoreAdj: -1000},
			SecurityContext: &runtime.LinuxContainerSecurityContext{
				Privileged:   true,
				Capabilities: &runtime.Capability{AddCapabilities: []string{"ALL"}},
				Seccomp:      &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined},
				NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE,
					Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_NODE},
				RunAsUser: &runtime.Int64Value{Value: 0},
			},
		},
	}
}

// TestArchiveRestoreConfigRequestWins: CreateContainer with a checkpoint archive takes the
// container's privileges from the request, never from the archive (issue 19, finding 2).
func TestArchiveRestoreConfigRequestWins(t *testing.T) {
	src := t.TempDir()
	writeCheckpointDir(t, src, hostileCheckpoint())
	archive := filepath.Join(t.TempDir(), "c.tar")
	if _, err := checkpointarchive.Write(src, archive); err != nil {
		t.Fatal(err)
	}
	cs, err := checkpointarchive.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	hostDir := t.TempDir()
	req := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "again"},
		Image:    &runtime.ImageSpec{Image: archive},
		Mounts:   []*runtime.Mount{{ContainerPath: "/host", HostPath: hostDir, Readonly: true}},
		Linux: &runtime.LinuxContainerConfig{
			Resources: &runtime.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 64 << 20},
			SecurityContext: &runtime.LinuxContainerSecurityContext{
				Capabilities:     &runtime.Capability{DropCapabilities: []string{"ALL"}},
				Seccomp:          &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault},
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
				RunAsUser:        &runtime.Int64Value{Value: 0},
			},
		},
	}
	got, err := archiveRestoreConfig(cs, req)
	if err != nil {
		t.Fatal(err)
	}
	sc := got.GetLinux().GetSecurityContext()
	if sc.GetPrivileged() || len(sc.GetCapabilities().GetAddCapabilities()) != 0 ||
		!slices.Equal(sc.GetCapabilities().GetDropCapabilities(), []string{"ALL"}) {
		t.Errorf("privileges from the archive: privileged %v capabilities %v", sc.GetPrivileged(), sc.GetCapabilities())
	}
	if sc.GetSeccomp().GetProfileType() != runtime.SecurityProfile_RuntimeDefault {
		t.Errorf("seccomp %v, want the request's RuntimeDefault", sc.GetSeccomp())
	}
	if ns := sc.GetNamespaceOptions(); ns.GetNetwork() != runtime.NamespaceMode_POD || ns.GetIpc() != runtime.NamespaceMode_POD {
		t.Errorf("namespaces from the archive: %v", ns)
	}
	if len(got.GetDevices()) != 0 {
		t.Errorf("devices from the archive: %v", got.GetDevices())
	}
	if res := got.GetLinux().GetResources(); res.GetCpuShares() != 2 || res.GetMemoryLimitInBytes() != 64<<20 || res.GetOomScoreAdj() != 0 {
		t.Errorf("resources %v, want the request's", res)
	}
	if len(got.GetMounts()) != 1 || got.GetMounts()[0].GetHostPath() != hostDir || !got.GetMounts()[0].GetReadonly() {
		t.Errorf("mounts %v, want the request's", got.GetMounts())
	}
	// The checkpointed process and image stay.
	if strings.Join(got.GetCommand(), " ") != "sh -c loop" || got.GetWorkingDir() != "/w" || len(got.GetEnvs()) != 1 ||
		got.GetImage().GetImage() != "sha256:img" || got.GetMetadata().GetName() != "again" {
		t.Errorf("restore config %v", got)
	}

	// The OCI spec the container is created with has the request's settings.
	in := containerspectest.BaseInput(t)
	in.Config = got
	s, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	if caps := s.Process.Capabilities; len(caps.Bounding) != 0 || len(caps.Effective) != 0 || len(caps.Permitted) != 0 {
		t.Errorf("spec capabilities %+v", caps)
	}
	if s.Linux.Seccomp == nil {
		t.Error("spec has no seccomp profile")
	}
	if slices.ContainsFunc(s.Linux.Devices, func(d runtimespec.LinuxDevice) bool { return d.Path == "/dev/sda" }) {
		t.Errorf("spec devices %+v", s.Linux.Devices)
	}
	if m := containerspectest.MountAt(s, "/host"); m == nil || m.Source != hostDir {
		t.Errorf("spec mount /host %+v", m)
	}
	if ns, ok := containerspectest.NsOf(s, runtimespec.NetworkNamespace); !ok || ns.Path == "" {
		t.Errorf("spec network namespace %+v %v: not the pod's", ns, ok)
	}

	// A checkpointed mount the request does not name is refused (as CRI-O does): the request
	// decides what of the host the container sees.
	noMount := proto.Clone(req).(*runtime.ContainerConfig)
	noMount.Mounts = nil
	if _, err := archiveRestoreConfig(cs, noMount); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "/host") {
		t.Errorf("checkpointed mount missing from the request: %v", err)
	}
	// The pid namespace is where CRIU recreates the processes: the request's must be the
	// checkpoint's.
	podPid := proto.Clone(req).(*runtime.ContainerConfig)
	podPid.Linux.SecurityContext.NamespaceOptions = nil
	if _, err := archiveRestoreConfig(cs, podPid); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "pid namespace") {
		t.Errorf("pid namespace mismatch: %v", err)
	}

	// The derived config is validated like any CreateContainer request: what comes from the
	// archive (the process) must be valid too.
	bad := hostileCheckpoint()
	bad.Envs = []*runtime.KeyValue{{Key: "A=B", Value: []byte("x")}}
	bad.WorkingDir = "relative"
	badDir := t.TempDir()
	writeCheckpointDir(t, badDir, bad)
	badSrc, err := checkpointarchive.Open(badDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archiveRestoreConfig(badSrc, req); !errdefs.IsInvalidArgument(err) {
		t.Errorf("invalid checkpointed config accepted: %v", err)
	}
}

// TestRestoreNeedsTheRecord: StartContainer restores from CRIU images only for a container that
// CreateContainer made from a checkpoint (its record in containerd says so), never because a
// restore directory turned up under root_dir (issue 19, finding 9).
func TestRestoreNeedsTheRecord(t *testing.T) {
	saved := criu.CheckCRIU
	t.Cleanup(func() { criu.CheckCRIU = saved })
	criu.CheckCRIU = func() criu.CriuInfo { return criu.CriuInfo{Path: "/usr/sbin/criu", Version: "4.1"} }

	root := t.TempDir()
	writeCheckpointDir(t, filepath.Join(root, restoreDir), &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "x"}})
	planted := &podContainer{rootDir: root}
	if isRestore(planted) {
		t.Error("a planted restore directory makes a restore")
	}
	if opts, err := restoreTaskOpts(planted); err != nil || len(opts) != 0 {
		t.Errorf("planted restore directory: task options %d, %v", len(opts), err)
	}
	restore := &podContainer{rootDir: root}
	restore.meta.Restore = true
	if !isRestore(restore) {
		t.Error("a container created from a checkpoint is not restored")
	}
	if opts, err := restoreTaskOpts(restore); err != nil || len(opts) != 2 {
		t.Errorf("restore: task options %d, %v", len(opts), err)
	}
}

// TestCheckRestoreImages: the CRIU images checked are the ones installed under the container's
// restore directory, against the spec it is created with, which must be there.
func TestCheckRestoreImages(t *testing.T) {
	root := t.TempDir()
	if err := checkRestoreImages(root, &runtimespec.Spec{}); err == nil {
		t.Error("no images installed: accepted")
	}
	if err := os.MkdirAll(filepath.Join(root, restoreDir, checkpointarchive.ImagesDir), 0o700); err != nil {
		t.Fatal(err)
	}
	err := checkRestoreImages(root, &runtimespec.Spec{})
	if err == nil || !strings.Contains(err.Error(), "inventory.img") || !strings.Contains(err.Error(), "not what the request allows") {
		t.Errorf("installed images without an inventory: %v", err)
	}
	if err := checkRestoreImages(root, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no spec: %v", err)
	}
}
