package criu

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	criucore "github.com/checkpoint-restore/go-criu/v8/crit/images/criu-core"
	"github.com/containerd/errdefs"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
)

// fuzzRestoreSpec is a spec with no capabilities but CHOWN, no_new_privs, user 1000, a seccomp
// profile refusing all but a few calls, masked and read-only paths.
func fuzzRestoreSpec() *runtimespec.Spec {
	caps := []string{"CAP_CHOWN"}
	return &runtimespec.Spec{
		Process: &runtimespec.Process{
			User:            runtimespec.User{UID: 1000, GID: 1000},
			NoNewPrivileges: true,
			Capabilities:    &runtimespec.LinuxCapabilities{Bounding: caps, Permitted: caps, Effective: caps},
		},
		Root: &runtimespec.Root{Path: "rootfs"},
		Mounts: []runtimespec.Mount{
			{Destination: "/proc", Type: "proc"},
			{Destination: "/sys", Type: "sysfs", Options: []string{"ro"}},
			{Destination: "/data", Type: "bind", Source: "/srv", Options: []string{"rbind", "ro"}},
		},
		Linux: &runtimespec.Linux{
			Namespaces: []runtimespec.LinuxNamespace{{Type: runtimespec.PIDNamespace}, {Type: runtimespec.MountNamespace},
				{Type: runtimespec.NetworkNamespace, Path: "/proc/42/ns/net"}},
			Seccomp: &runtimespec.LinuxSeccomp{DefaultAction: runtimespec.ActErrno,
				Architectures: []runtimespec.Arch{runtimespec.ArchX86_64, runtimespec.ArchX86},
				Syscalls: []runtimespec.LinuxSyscall{
					{Names: []string{"read", "write", "exit"}, Action: runtimespec.ActAllow},
					{Names: []string{"clone"}, Action: runtimespec.ActAllow, Args: []runtimespec.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, Op: runtimespec.OpMaskedEqual}}},
				}},
			MaskedPaths:   []string{"/proc/kcore"},
			ReadonlyPaths: []string{"/proc/sys"},
		},
	}
}

// FuzzCheckpointImages checks a checkpoint whose core image of the root task, seccomp image
// and mount tree are the fuzzer's bytes (the rest a consistent checkpoint). The properties: no
// panic, a bounded run, and an answer that is nil or InvalidArgument. `make fuzz` runs it for a
// bounded time; plain `go test` runs the seeds (a consistent checkpoint, and each image of a
// hostile one).
func FuzzCheckpointImages(f *testing.F) {
	spec := fuzzRestoreSpec()
	saved := hostPathExists
	defer func() { hostPathExists = saved }()
	hostPathExists = func(string) bool { return true }

	// The seeds: the images of benignImages, and hostile variants, as written by go-criu.
	imagesOf := func(fx *criuFixture) fstest.MapFS {
		dir := f.TempDir()
		fx.write(f, dir)
		m := fstest.MapFS{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			m[e.Name()] = &fstest.MapFile{Data: b, Mode: 0o600}
		}
		return m
	}
	base := benignImages(spec)
	base.pstree = base.pstree[:1] // the root task alone: its core is the fuzzer's
	base.cores = map[uint32]*criucore.CoreEntry{1: base.cores[1]}
	base.ids = map[uint32]*criucore.TaskKobjIdsEntry{1: base.ids[1]}
	good := imagesOf(base)
	if _, err := loadCRIUImagesFS(good); err != nil {
		f.Fatalf("the base images do not load: %v", err)
	}
	if err := checkImagesFS(good, spec); err != nil {
		f.Fatalf("the base images are refused: %v", err)
	}
	f.Add(good["core-1.img"].Data, good["seccomp.img"].Data, good["mountpoints-13.img"].Data)
	hostile := benignImages(spec)
	c := hostile.cores[1].ThreadCore
	c.Creds.CapBnd = []uint32{0xffffffff, 0x1ff}
	c.SeccompMode = nil
	hostile.seccomp.SeccompFilters[0].Prev = u32(0)
	mountOf(hostile, "/sys").Flags = u32(0)
	bad := imagesOf(hostile)
	f.Add(bad["core-1.img"].Data, bad["seccomp.img"].Data, bad["mountpoints-13.img"].Data)
	f.Add([]byte{}, []byte{}, []byte{})

	f.Fuzz(func(t *testing.T, core, sc, mounts []byte) {
		m := fstest.MapFS{}
		for k, v := range good {
			m[k] = v
		}
		m["core-1.img"] = &fstest.MapFile{Data: core, Mode: 0o600}
		m["seccomp.img"] = &fstest.MapFile{Data: sc, Mode: 0o600}
		m["mountpoints-13.img"] = &fstest.MapFile{Data: mounts, Mode: 0o600}
		if err := checkImagesFS(m, spec); err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("not InvalidArgument: %v", err)
		}
	})
}
