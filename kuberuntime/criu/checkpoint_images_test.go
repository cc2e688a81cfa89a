package criu

import (
	"encoding/binary"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v8/crit"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/cgroup"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/creds"
	criucore "github.com/checkpoint-restore/go-criu/v8/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/mnt"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/seccomp"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/checkpointarchive"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec/containerspectest"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criuFixture is the CRIU images of a checkpoint, written with go-criu's encoder (crit): a root
// task (pid 1) and a child with two threads (26, 27), in their own pid, network, IPC, UTS and
// mount namespaces, in the checkpointed container's cgroup.
type criuFixture struct {
	inventory *inventory.InventoryEntry
	pstree    []*pstree.PstreeEntry
	cores     map[uint32]*criucore.CoreEntry
	ids       map[uint32]*criucore.TaskKobjIdsEntry
	seccomp   *seccomp.SeccompEntry
	cgroup    *cgroup.CgroupEntry
	mounts    map[uint32][]*mnt.MntEntry
	raw       map[string][]byte // files written as they are
}

func u32(v uint32) *uint32 { return &v }

func criuIDs(pid, net, ipc, uts, mntNs, user, tim uint32) *criucore.TaskKobjIdsEntry {
	return &criucore.TaskKobjIdsEntry{VmId: u32(2), FilesId: u32(2), FsId: u32(2), SighandId: u32(2),
		PidNsId: u32(pid), NetNsId: u32(net), IpcNsId: u32(ipc), UtsNsId: u32(uts), MntNsId: u32(mntNs),
		UserNsId: u32(user), CgroupNsId: u32(8), TimeNsId: u32(tim)}
}

// capWords is a capability set as CRIU writes it.
func capWords(names []string) []uint32 {
	b := capBits(names)
	return []uint32{uint32(b), uint32(b >> 32)}
}

// specCreds are the credentials runc gives the spec's process.
func specCreds(s *runtimespec.Spec) *creds.CredsEntry {
	u := s.Process.User
	c := s.Process.Capabilities
	cr := &creds.CredsEntry{Uid: u32(u.UID), Euid: u32(u.UID), Suid: u32(u.UID), Fsuid: u32(u.UID),
		Gid: u32(u.GID), Egid: u32(u.GID), Sgid: u32(u.GID), Fsgid: u32(u.GID), Secbits: u32(0),
		Groups: u.AdditionalGids, CapBnd: capWords(c.Bounding), CapPrm: capWords(c.Permitted),
		CapEff: capWords(c.Effective), CapInh: capWords(c.Inheritable), CapAmb: capWords(c.Ambient)}
	if s.Process.NoNewPrivileges {
		cr.NoNewPrivs = u32(1)
	}
	return cr
}

// bpfAsm assembles a filter.
func bpfAsm(ins ...bpfInsn) []byte {
	b := make([]byte, 8*len(ins))
	for i, in := range ins {
		binary.LittleEndian.PutUint16(b[8*i:], in.Code)
		b[8*i+2], b[8*i+3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[8*i+4:], in.K)
	}
	return b
}

// specFilter is a filter in the spirit of runc's for the spec: calls of another architecture
// than the native one are killed, every probed call the profile refuses with some arguments
// fails with EPERM, the rest is allowed. allowArch, when set, is an architecture whose calls
// are all let through (what a hostile archive would do).
func specFilter(p *runtimespec.LinuxSeccomp, allowArch uint32) []byte {
	native := probeArches()[0]
	var denied []uint32
	for _, sc := range criuProbeSyscalls {
		for _, args := range probeArgs {
			if nr := native.Nr(sc); nr >= 0 && specDeniesCall(p, native, sc.Name, args) {
				denied = append(denied, uint32(nr))
				break
			}
		}
	}
	n := len(denied)
	// 0 ld arch; 1 jeq allowArch → allow; 2 jeq native ? 3 : kill; 3 ld nr; 4 jge x32 → kill;
	// 5.. jeq nr → errno; then allow, errno, kill.
	allow, errno, kill := uint32(5+n), uint32(6+n), uint32(7+n)
	ins := []bpfInsn{
		{Code: bpfLD | bpfW | bpfABS, K: 4},
		{Code: bpfJMP | bpfJEQ | bpfK, K: allowArch, Jt: uint8(allow - 2), Jf: 0},
		{Code: bpfJMP | bpfJEQ | bpfK, K: native.Audit, Jt: 0, Jf: uint8(kill - 3)},
		{Code: bpfLD | bpfW | bpfABS, K: 0},
		{Code: bpfJMP | bpfJGE | bpfK, K: x32SyscallBit, Jt: uint8(kill - 5), Jf: 0},
	}
	for i, nr := range denied {
		pc := uint32(5 + i)
		ins = append(ins, bpfInsn{Code: bpfJMP | bpfJEQ | bpfK, K: nr, Jt: uint8(errno - pc - 1)})
	}
	ins = append(ins, bpfInsn{Code: bpfRET | bpfK, K: seccompRetAllow}, bpfInsn{Code: bpfRET | bpfK, K: seccompRetErrno | 1},
		bpfInsn{Code: bpfRET | bpfK, K: seccompRetKillProcess})
	return bpfAsm(ins...)
}

// specMounts is the mount tree runc makes from the spec: the root, the spec's mounts (its binds
// as CRIU records them, external by destination), a tmpfs over every masked path and a
// read-only bind over every read-only one.
func specMounts(s *runtimespec.Spec) []*mnt.MntEntry {
	var out []*mnt.MntEntry
	add := func(fstype uint32, root, point string, flags uint32, ext string) {
		id := uint32(100 + len(out))
		m := &mnt.MntEntry{Fstype: u32(fstype), MntId: u32(id), RootDev: u32(id), Flags: u32(flags),
			Root: proto.String(root), Mountpoint: proto.String(point), Source: proto.String("none"), Options: proto.String("")}
		if ext != "" {
			m.ExtKey = proto.String(ext)
		}
		out = append(out, m)
	}
	add(uint32(mnt.Fstype_OVERLAYFS), "/", "/", 0, "")
	for _, m := range s.Mounts {
		flags := uint32(0)
		if slices.Contains(m.Options, "ro") {
			flags = MsRdonly
		}
		dst := path.Clean(m.Destination)
		switch {
		case isBindMount(&m):
			add(0, m.Source, dst, flags, dst)
		case m.Type == "proc":
			add(uint32(mnt.Fstype_PROC), "/", dst, flags, "")
		case m.Type == "sysfs":
			add(uint32(mnt.Fstype_SYSFS), "/", dst, flags, "")
		case m.Type == "devpts":
			add(uint32(mnt.Fstype_DEVPTS), "/", dst, flags, "")
		case m.Type == "mqueue":
			add(uint32(mnt.Fstype_MQUEUE), "/", dst, flags, "")
		case m.Type == "cgroup":
			add(uint32(mnt.Fstype_CGROUP2), "/", dst, flags, "")
		default:
			add(uint32(mnt.Fstype_TMPFS), "/", dst, flags, "")
		}
	}
	for _, p := range s.Linux.MaskedPaths {
		add(uint32(mnt.Fstype_TMPFS), "/", p, MsRdonly, "")
	}
	for _, p := range s.Linux.ReadonlyPaths {
		add(uint32(mnt.Fstype_PROC), strings.TrimPrefix(p, "/proc"), p, MsRdonly, "")
	}
	// Binds of a file system share its device.
	for _, m := range out {
		if m.GetFstype() == uint32(mnt.Fstype_PROC) && m.GetRoot() != "/" {
			for _, q := range out {
				if q.GetFstype() == uint32(mnt.Fstype_PROC) && q.GetRoot() == "/" {
					m.RootDev = q.RootDev
				}
			}
		}
	}
	// Parents: the mount holding each mount point.
	for _, m := range out {
		parent := uint32(1) // the root's parent, outside the tree
		best := -1
		for _, q := range out {
			qp := q.GetMountpoint()
			if q != m && (qp == "/" || strings.HasPrefix(m.GetMountpoint(), qp+"/")) && len(qp) > best && m.GetMountpoint() != "/" {
				parent, best = q.GetMntId(), len(qp)
			}
		}
		m.ParentMntId = u32(parent)
	}
	return out
}

// benignImages are the images of a checkpoint of a container made from the spec, as runc
// started it: every task with the spec's credentials and a filter refusing what its profile
// refuses.
func benignImages(s *runtimespec.Spec) *criuFixture {
	f := &criuFixture{
		inventory: &inventory.InventoryEntry{ImgVersion: u32(criuImagesV1_1), RootCgSet: u32(1),
			RootIds: criuIDs(1, 2, 3, 4, 6, 7, 5)},
		pstree: []*pstree.PstreeEntry{
			{Pid: u32(1), Ppid: u32(0), Pgid: u32(1), Sid: u32(1), Threads: []uint32{1}},
			{Pid: u32(26), Ppid: u32(1), Pgid: u32(1), Sid: u32(1), Threads: []uint32{26, 27}},
		},
		cores: map[uint32]*criucore.CoreEntry{},
		ids:   map[uint32]*criucore.TaskKobjIdsEntry{1: criuIDs(9, 10, 11, 12, 13, 7, 5), 26: criuIDs(9, 10, 11, 12, 13, 7, 5)},
		cgroup: &cgroup.CgroupEntry{
			Sets:        []*cgroup.CgSetEntry{{Id: u32(2), Ctls: []*cgroup.CgMemberEntry{{Name: proto.String(""), Path: proto.String("/kubepods/pod1/c1")}}}},
			Controllers: []*cgroup.CgControllerEntry{{Cnames: []string{""}, Dirs: []*cgroup.CgroupDirEntry{{DirName: proto.String("kubepods/pod1/c1")}}}},
		},
		mounts: map[uint32][]*mnt.MntEntry{13: specMounts(s)},
		raw:    map[string][]byte{"pages-1.img": make([]byte, 4096), "descriptors.json": []byte(`[]`)},
	}
	if s.Linux.Seccomp != nil {
		f.seccomp = &seccomp.SeccompEntry{SeccompFilters: []*seccomp.SeccompFilter{{Filter: specFilter(s.Linux.Seccomp, 0)}}}
	}
	for _, tid := range []uint32{1, 26, 27} {
		core := &criucore.CoreEntry{Mtype: criucore.CoreEntry_X86_64.Enum(),
			ThreadCore: &criucore.ThreadCoreEntry{FutexRla: proto.Uint64(0), FutexRlaLen: u32(0), Creds: specCreds(s), CgSet: u32(2)}}
		if tid != 27 {
			core.Tc = &criucore.TaskCoreEntry{TaskState: u32(criuTaskAlive), ExitCode: u32(0), Personality: u32(0), Flags: u32(0),
				BlkSigset: proto.Uint64(0), Comm: proto.String("sh"), CgSet: u32(2), OomScoreAdj: proto.Int32(0)}
		}
		if s.Linux.Seccomp != nil {
			core.ThreadCore.SeccompMode = criucore.SeccompMode_filter.Enum()
			core.ThreadCore.SeccompFilter = u32(0)
		}
		f.cores[tid] = core
	}
	return f
}

func (f *criuFixture) write(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	img := func(name, magicName string, msgs ...proto.Message) {
		t.Helper()
		out, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		ci := &crit.CriuImage{Magic: magicName}
		for _, m := range msgs {
			ci.Entries = append(ci.Entries, &crit.CriuEntry{Message: m})
		}
		if err := crit.New(nil, out, "", false, false).Encode(ci); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	img("inventory.img", "INVENTORY", f.inventory)
	var ps []proto.Message
	for _, p := range f.pstree {
		ps = append(ps, p)
	}
	img("pstree.img", "PSTREE", ps...)
	for tid, c := range f.cores {
		img("core-"+itoa(tid)+".img", "CORE", c)
	}
	for pid, ids := range f.ids {
		img("ids-"+itoa(pid)+".img", "IDS", ids)
	}
	if f.seccomp != nil {
		img("seccomp.img", "SECCOMP", f.seccomp)
	}
	if f.cgroup != nil {
		img("cgroup.img", "CGROUP", f.cgroup)
	}
	for ns, ms := range f.mounts {
		var msgs []proto.Message
		for _, m := range ms {
			msgs = append(msgs, m)
		}
		img("mountpoints-"+itoa(ns)+".img", "MNTS", msgs...)
	}
	for name, b := range f.raw {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// restoreSpec is the spec of a container restored with a request that drops every capability,
// has RuntimeDefault seccomp, runs as user 1000 with no_new_privs, masks /proc/kcore and makes
// /proc/sys read-only (as the kubelet asks).
func restoreSpec(t *testing.T, mut func(*runtime.ContainerConfig)) *runtimespec.Spec {
	t.Helper()
	in := containerspectest.BaseInput(t)
	in.Config.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{
		Capabilities:     &runtime.Capability{DropCapabilities: []string{"ALL"}},
		Seccomp:          &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault},
		NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER},
		RunAsUser:        &runtime.Int64Value{Value: 1000},
		NoNewPrivs:       true,
		MaskedPaths:      []string{"/proc/kcore"},
		ReadonlyPaths:    []string{"/proc/sys"},
	}
	in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/data", HostPath: t.TempDir(), Readonly: true}}
	if mut != nil {
		mut(in.Config)
	}
	s, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCheckpointImagesRefused: the CRIU images decide what CRIU restores (credentials, seccomp,
// namespaces, cgroups, mounts); an archive whose images give the processes more than the
// request's spec is refused with InvalidArgument, and one made from a container of that spec is
// accepted (issue 19, finding 2).
func TestCheckpointImagesRefused(t *testing.T) {
	spec := restoreSpec(t, nil)
	if spec.Linux.Seccomp == nil || len(spec.Process.Capabilities.Bounding) != 0 || !spec.Process.NoNewPrivileges || spec.Process.User.UID != 1000 {
		t.Fatalf("restore spec: seccomp %v, capabilities %+v, nnp %v, user %+v", spec.Linux.Seccomp != nil,
			spec.Process.Capabilities, spec.Process.NoNewPrivileges, spec.Process.User)
	}
	allCaps := []uint32{0xffffffff, 0x1ff}
	cases := []struct {
		name string
		mut  func(f *criuFixture, s *runtimespec.Spec)
		want string // "" accepted
	}{
		{"consistent with the request", nil, ""},
		{"all capabilities", func(f *criuFixture, _ *runtimespec.Spec) {
			c := f.cores[26].ThreadCore.Creds
			c.CapBnd, c.CapPrm, c.CapEff = allCaps, allCaps, allCaps
		}, "bounding capabilities CAP_CHOWN"},
		{"one capability in one thread", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[27].ThreadCore.Creds.CapAmb = capWords([]string{"CAP_SYS_ADMIN"})
		}, "task 26, thread 27: ambient capabilities CAP_SYS_ADMIN"},
		{"seccomp disabled", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[1].ThreadCore.SeccompMode = criucore.SeccompMode_disabled.Enum()
		}, "task 1, thread 1: no seccomp filter"},
		{"seccomp disabled by the old per-task field", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[26].Tc.OldSeccompMode = criucore.SeccompMode_disabled.Enum()
		}, "task 26, thread 26: no seccomp filter"},
		{"a filter allowing everything", func(f *criuFixture, _ *runtimespec.Spec) {
			f.seccomp.SeccompFilters[0].Filter = bpfAsm(bpfInsn{Code: bpfRET | bpfK, K: seccompRetAllow})
		}, "its seccomp filters let acct (SCMP_ARCH_X86_64) through"},
		{"a filter allowing the i386 calls", func(f *criuFixture, s *runtimespec.Spec) {
			f.seccomp.SeccompFilters[0].Filter = specFilter(s.Linux.Seccomp, auditArchI386)
		}, "(SCMP_ARCH_X86) through"},
		{"a filter chain that loops", func(f *criuFixture, s *runtimespec.Spec) {
			f.seccomp.SeccompFilters[0].Prev = u32(0)
		}, "out of range or a loop"},
		{"a filter chain longer than the kernel takes", func(f *criuFixture, s *runtimespec.Spec) {
			long := make([]bpfInsn, bpfMaxInsns)
			for i := range long {
				long[i] = bpfInsn{Code: bpfLD | bpfIMM}
			}
			long[len(long)-1] = bpfInsn{Code: bpfRET | bpfK, K: seccompRetErrno}
			f.seccomp.SeccompFilters = []*seccomp.SeccompFilter{{Filter: bpfAsm(long...)}}
			for i := uint32(1); i < 9; i++ {
				f.seccomp.SeccompFilters = append(f.seccomp.SeccompFilters, &seccomp.SeccompFilter{Filter: bpfAsm(long...), Prev: u32(i - 1)})
			}
			for _, c := range f.cores {
				c.ThreadCore.SeccompFilter = u32(8)
			}
		}, "more than the kernel's 32768 instructions"},
		{"too many mounts", func(f *criuFixture, s *runtimespec.Spec) {
			for i := 0; i < criuMaxMounts; i++ {
				m := proto.Clone(mountOf(f, "/dev/mqueue")).(*mnt.MntEntry)
				m.MntId, m.Mountpoint = u32(uint32(10000+i)), proto.String("/dev/mqueue/"+itoa(uint32(i)))
				f.mounts[13] = append(f.mounts[13], m)
			}
		}, "more than 4096 mounts"},
		{"a filter the kernel would not load", func(f *criuFixture, s *runtimespec.Spec) {
			f.seccomp.SeccompFilters[0].Filter = bpfAsm(bpfInsn{Code: bpfLD | bpfW | bpfABS, K: 64}, bpfInsn{Code: bpfRET | bpfA})
		}, "loads at offset 64"},
		{"no_new_privs off", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[1].ThreadCore.Creds.NoNewPrivs = nil
		}, "no_new_privs is off"},
		{"root", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[1].ThreadCore.Creds.Euid = u32(0)
		}, "user id 0: the container runs as 1000"},
		{"a group of its own", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[1].ThreadCore.Creds.Groups = []uint32{0}
		}, "group id 0"},
		{"no credentials", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[27].ThreadCore.Creds = nil
		}, "thread 27: no credentials"},
		{"the host's network namespace", func(f *criuFixture, _ *runtimespec.Spec) {
			f.ids[1].NetNsId = u32(2)
		}, "task 1: it would be restored in the host's network namespace"},
		{"a user namespace", func(f *criuFixture, _ *runtimespec.Spec) {
			f.ids[26].UserNsId = u32(99)
		}, "task 26: it is in a user namespace"},
		{"the host's root cgroup", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cgroup.Sets[0].Ctls[0].Path = proto.String("/")
		}, "cgroup / of controller"},
		{"a sibling cgroup", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cgroup.Sets[0].Ctls[0].Path = proto.String("/kubepods/pod1/c1x")
		}, "not under the checkpointed container's cgroup"},
		{"a lower OOM score", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[1].Tc.OomScoreAdj = proto.Int32(-1000)
		}, "OOM score adjustment -1000"},
		{"real-time scheduling", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[27].ThreadCore.SchedPolicy = u32(schedFIFO)
		}, "real-time scheduling policy"},
		{"a writable sysfs", func(f *criuFixture, _ *runtimespec.Spec) {
			mountOf(f, "/sys").Flags = u32(0)
		}, "mount at /sys: sysfs is writable"},
		{"a writable read-only volume", func(f *criuFixture, _ *runtimespec.Spec) {
			mountOf(f, "/data").Flags = u32(0)
		}, "mount at /data is writable"},
		{"the host's devices", func(f *criuFixture, _ *runtimespec.Spec) {
			m := mountOf(f, "/dev")
			m.Fstype = u32(uint32(mnt.Fstype_DEVTMPFS))
		}, "file system type 3 (DEVTMPFS"},
		{"a disk named by the image", func(f *criuFixture, _ *runtimespec.Spec) {
			m := mountOf(f, "/data")
			m.ExtKey, m.Fstype, m.Fsname, m.Source = nil, u32(uint32(mnt.Fstype_AUTO)), proto.String("ext4"), proto.String("/dev/sda1")
		}, `(AUTO "ext4")`},
		{"a mask binding the host's /dev/null (a user namespace's)", func(f *criuFixture, _ *runtimespec.Spec) {
			null := &mnt.MntEntry{Fstype: u32(uint32(mnt.Fstype_DEVTMPFS)), MntId: u32(900), RootDev: u32(5), ParentMntId: mountOf(f, "/dev").MntId,
				Root: proto.String("/null"), Mountpoint: proto.String("/dev/null"), Source: proto.String("udev"), Options: proto.String(""),
				Flags: u32(0), ExtKey: proto.String("/dev/null")}
			m := mountOf(f, "/proc/kcore")
			m.Fstype, m.RootDev, m.Root = null.Fstype, null.RootDev, null.Root
			f.mounts[13] = append(f.mounts[13], null)
		}, ""},
		{"a mask of the host's devices", func(f *criuFixture, _ *runtimespec.Spec) {
			m := mountOf(f, "/proc/kcore")
			m.Fstype, m.Root = u32(uint32(mnt.Fstype_DEVTMPFS)), proto.String("/")
		}, "mount at /proc/kcore: file system type 3"},
		{"no mount tree", func(f *criuFixture, _ *runtimespec.Spec) {
			f.mounts[14] = f.mounts[13]
			delete(f.mounts, 13)
		}, "no mount tree for the root task's mount namespace (13)"},
		{"an unmasked path", func(f *criuFixture, _ *runtimespec.Spec) {
			f.mounts[13] = slices.DeleteFunc(f.mounts[13], func(m *mnt.MntEntry) bool { return m.GetMountpoint() == "/proc/kcore" })
		}, "/proc/kcore is not masked"},
		{"a writable /proc/sys", func(f *criuFixture, _ *runtimespec.Spec) {
			mountOf(f, "/proc/sys").Flags = u32(0)
		}, "a writable bind of /proc/sys"},
		{"a mount hiding the masks", func(f *criuFixture, _ *runtimespec.Spec) {
			m := proto.Clone(mountOf(f, "/proc")).(*mnt.MntEntry)
			m.MntId, m.ParentMntId = u32(999), mountOf(f, "/proc").MntId
			f.mounts[13] = append(f.mounts[13], m)
		}, "two mounts at /proc"},
		{"a second proc", func(f *criuFixture, _ *runtimespec.Spec) {
			m := proto.Clone(mountOf(f, "/proc")).(*mnt.MntEntry)
			m.MntId, m.Mountpoint = u32(999), proto.String("/tmp")
			f.mounts[13] = append(f.mounts[13], m)
		}, "mount at /tmp: a proc the container does not have there"},
		{"a bind out of the root", func(f *criuFixture, _ *runtimespec.Spec) {
			mountOf(f, "/proc/sys").Root = proto.String("/../../..")
		}, "not a clean absolute path"},
		{"an AppArmor policy", func(f *criuFixture, _ *runtimespec.Spec) {
			f.raw["apparmor.img"] = criuHead("APPARMOR")
		}, "apparmor images"},
		{"an image CRIU does not write", func(f *criuFixture, _ *runtimespec.Spec) {
			f.raw["evil.img"] = []byte("\x00\x01\x02\x03\x04\x05\x06\x07")
		}, "evil.img: not an image CRIU writes"},
		{"a truncated image", func(f *criuFixture, _ *runtimespec.Spec) {
			f.raw["core-27.img"] = append(criuHead("CORE"), 0xff, 0, 0, 0, 1)
		}, "core-27.img: entry of 255 bytes, 1 left"},
		{"an oversized image", func(f *criuFixture, _ *runtimespec.Spec) {
			f.raw["seccomp.img"] = append(criuHead("SECCOMP"), make([]byte, criuMaxImageBytes)...)
		}, "larger than"},
		{"a field go-criu does not know", func(f *criuFixture, _ *runtimespec.Spec) {
			f.cores[1].ThreadCore.Creds.ProtoReflect().SetUnknown([]byte{0xf8, 0x3f, 0x01}) // field 1023, varint 1
		}, "a field this runtime does not know in creds_entry"},
		{"an old image format", func(f *criuFixture, _ *runtimespec.Spec) {
			f.inventory.ImgVersion = u32(1)
		}, "image format 1"},
		{"a missing thread", func(f *criuFixture, _ *runtimespec.Spec) {
			f.pstree[1].Threads = append(f.pstree[1].Threads, 28)
		}, "core-28.img: missing"},
		{"a task before its parent", func(f *criuFixture, _ *runtimespec.Spec) {
			f.pstree[0], f.pstree[1] = f.pstree[1], f.pstree[0]
		}, "the root task must come first"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			saved := hostPathExists
			t.Cleanup(func() { hostPathExists = saved })
			hostPathExists = func(string) bool { return true }
			f := benignImages(spec)
			if c.mut != nil {
				c.mut(f, spec)
			}
			dir := t.TempDir()
			f.write(t, dir)
			err := CheckCheckpointImages(dir, spec)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want InvalidArgument with %q", err, c.want)
			}
		})
	}
}

func mountOf(f *criuFixture, point string) *mnt.MntEntry {
	for _, m := range f.mounts[13] {
		if m.GetMountpoint() == point {
			return m
		}
	}
	panic("no mount at " + point)
}

// criuHead is the start of an image: the common magic and the image's.
func criuHead(magicName string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, criuMagicOf("IMG_COMMON"))
	return binary.LittleEndian.AppendUint32(b, criuMagicOf(magicName))
}

// TestCheckpointImagesPolicy: what the spec lets a process reach is accepted, by the kernel's
// rules: without no_new_privs any user (set-user-ID files) and the bounding set's capabilities
// as permitted; with CAP_SETUID any user; a profile-free spec takes any filter.
func TestCheckpointImagesPolicy(t *testing.T) {
	cases := []struct {
		name string
		req  func(*runtime.ContainerConfig)
		mut  func(f *criuFixture)
		want string
	}{
		{"root after a set-user-ID exec, no no_new_privs", func(c *runtime.ContainerConfig) {
			c.Linux.SecurityContext.NoNewPrivs = false
			c.Linux.SecurityContext.Capabilities = &runtime.Capability{AddCapabilities: []string{"CHOWN"}, DropCapabilities: []string{"ALL"}}
		}, func(f *criuFixture) {
			c := f.cores[1].ThreadCore.Creds
			c.Uid, c.Euid, c.Suid, c.Fsuid, c.NoNewPrivs = u32(0), u32(0), u32(0), u32(0), nil
			c.CapPrm, c.CapEff = capWords([]string{"CAP_CHOWN"}), capWords([]string{"CAP_CHOWN"})
		}, ""},
		{"bounding set permitted with no_new_privs", func(c *runtime.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtime.Capability{AddCapabilities: []string{"CHOWN"}, DropCapabilities: []string{"ALL"}}
			c.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: 0}
		}, func(f *criuFixture) {
			// runc gives a non-root... here root: permitted = bounding already; an extra one is not.
			f.cores[1].ThreadCore.Creds.CapPrm = capWords([]string{"CAP_CHOWN", "CAP_KILL"})
		}, "permitted capabilities CAP_KILL"},
		{"another user with CAP_SETUID", func(c *runtime.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtime.Capability{AddCapabilities: []string{"SETUID", "SETGID"}, DropCapabilities: []string{"ALL"}}
		}, func(f *criuFixture) {
			c := f.cores[1].ThreadCore.Creds
			c.Uid, c.Euid, c.Gid = u32(33), u32(33), u32(33)
		}, ""},
		{"no profile, own filters", func(c *runtime.ContainerConfig) {
			c.Linux.SecurityContext.Seccomp = nil
		}, func(f *criuFixture) {
			f.seccomp = &seccomp.SeccompEntry{SeccompFilters: []*seccomp.SeccompFilter{{Filter: bpfAsm(bpfInsn{Code: bpfRET | bpfK, K: seccompRetAllow})}}}
			f.cores[1].ThreadCore.SeccompMode = criucore.SeccompMode_filter.Enum()
			f.cores[1].ThreadCore.SeccompFilter = u32(0)
		}, ""},
		{"strict mode under a profile", nil, func(f *criuFixture) {
			f.cores[26].ThreadCore.SeccompMode = criucore.SeccompMode_strict.Enum()
		}, ""},
		{"a zombie", nil, func(f *criuFixture) {
			f.cores[26].Tc.TaskState = u32(criuTaskDead)
			f.cores[26].ThreadCore.Creds = nil
			f.cores[27].ThreadCore.Creds = nil
		}, ""},
		{"a chain of two filters", nil, func(f *criuFixture) {
			f.seccomp.SeccompFilters = append(f.seccomp.SeccompFilters,
				&seccomp.SeccompFilter{Filter: bpfAsm(bpfInsn{Code: bpfRET | bpfK, K: seccompRetAllow}), Prev: u32(0)})
			for _, c := range f.cores {
				c.ThreadCore.SeccompFilter = u32(1)
			}
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := restoreSpec(t, c.req)
			saved := hostPathExists
			t.Cleanup(func() { hostPathExists = saved })
			hostPathExists = func(string) bool { return true }
			f := benignImages(spec)
			c.mut(f)
			dir := t.TempDir()
			f.write(t, dir)
			err := CheckCheckpointImages(dir, spec)
			if c.want == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.want != "" && (!errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("got %v, want InvalidArgument with %q", err, c.want)
			}
		})
	}
}

// TestCheckImagesOfAnArchive: the images of a checkpoint archive, once installed from it, are
// checked against the spec the request gives: those of a container of that spec pass, hostile ones
// (every capability, no seccomp) are refused.
func TestCheckImagesOfAnArchive(t *testing.T) {
	spec := restoreSpec(t, nil)
	saved := hostPathExists
	t.Cleanup(func() { hostPathExists = saved })
	hostPathExists = func(string) bool { return true }
	for _, hostile := range []bool{false, true} {
		src := t.TempDir()
		f := benignImages(spec)
		if hostile {
			for _, c := range f.cores {
				c.ThreadCore.Creds.CapBnd = []uint32{0xffffffff, 0x1ff}
				c.ThreadCore.SeccompMode = nil
			}
		}
		f.write(t, filepath.Join(src, checkpointarchive.ImagesDir))
		cfg := checkpointarchive.Config{ID: "old", ImageID: "sha256:img", ContainerConfig: []byte(`{"metadata":{"name":"c"}}`)}
		if err := checkpointarchive.WriteDumps(src, cfg, spec); err != nil {
			t.Fatal(err)
		}
		archive := filepath.Join(t.TempDir(), "c.tar")
		if _, err := checkpointarchive.Write(src, archive); err != nil {
			t.Fatal(err)
		}
		cs, err := checkpointarchive.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "restore")
		if err := cs.Install(t.Context(), dst, 0); err != nil {
			t.Fatal(err)
		}
		err = CheckCheckpointImages(filepath.Join(dst, checkpointarchive.ImagesDir), spec)
		if hostile && (!errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "bounding capabilities")) {
			t.Errorf("hostile archive: %v", err)
		}
		if !hostile && err != nil {
			t.Errorf("archive of a container of the request's spec: %v", err)
		}
	}
}
