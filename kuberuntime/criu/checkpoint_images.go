package criu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/checkpoint-restore/go-criu/v8/crit/images/cgroup"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/creds"
	criucore "github.com/checkpoint-restore/go-criu/v8/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/mnt"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/seccomp"
	"github.com/checkpoint-restore/go-criu/v8/magic"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/errdefs"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The CRIU images of a checkpoint, checked against the container it is restored into.
//
// runc restore gives CRIU the container's namespaces, cgroups, root and bind-mount sources, but
// what the restored processes are comes from the images alone: CRIU restores each thread's
// credentials (uids, gids, groups, the five capability sets, securebits, no_new_privs, LSM
// label), its seccomp filters, the tasks' namespaces and cgroups and the container's mount tree,
// and runc applies none of the spec's process settings over them. A checkpoint archive is not
// trusted, so before its container is created the images must show nothing the spec the
// container is created with (the request's) does not give it; what CRIU would restore beyond
// that is refused (InvalidArgument). The images are decoded here with go-criu's protobuf types,
// framed the way CRIU reads them (criu/image.c, criu/protobuf.c), bounded in size.

const (
	criuMaxImageBytes = 16 << 20 // one decoded image; CRIU's task images are a few KB
	criuMaxImageFiles = 1 << 20  // files in the images directory
	criuMaxThreads    = 1 << 16  // threads of all tasks
	criuPidMax        = 1 << 22  // PID_MAX_LIMIT: CRIU keeps pids as int
	criuImagesV1_1    = 2        // CRTOOLS_IMAGES_V1_1, the only image format accepted
	criuMaxMounts     = 1 << 12  // mounts of a mount namespace (kubelet pods have tens)
)

var criuMagic = sync.OnceValue(func() magic.MagicMap { return magic.LoadMagic() })

func criuMagicOf(name string) uint32 { return uint32(criuMagic().ByName[name]) }

// criuRawImage: the images CRIU writes without a magic (RAW_IMAGE_MAGIC: memory pages, tar
// archives of tmpfs contents, netlink dumps of routes and rules, iptables-save output).
var criuRawImage = regexp.MustCompile(`^(pages(-shmem)?|ifaddr|route6?|rule|iptables|ip6tables|nftables|netns-ct|netns-exp|tmpfs(-dev)?)-[0-9]+(\.tar\.gz)?\.img$`)

// criuImageSet is what of a checkpoint's images the check reads.
type criuImageSet struct {
	rootIDs   *criucore.TaskKobjIdsEntry // CRIU's own namespaces at dump time
	rootCgSet uint32
	tasks     []*criuTask // tasks[0] is the root task
	filters   []*seccomp.SeccompFilter
	cgroups   *cgroup.CgroupEntry
	mounts    map[uint32][]*mnt.MntEntry // by mount namespace id
	kinds     map[string]bool            // the magics of the images present

	// The seccomp check's state: filters parsed, chains judged (by their first filter), and
	// the instructions of the chains run so far.
	programs     map[uint32]seccompProgram
	chainChecked map[uint32]error
	checkedInsns int
}

type criuTask struct {
	pid, ppid uint32
	threads   []criuThread
	ids       *criucore.TaskKobjIdsEntry
}

type criuThread struct {
	tid  uint32
	core *criucore.CoreEntry
}

// leader is the core of the thread whose id is the task's: CRIU's per-task state is in it.
func (t *criuTask) leader() *criucore.CoreEntry {
	for _, th := range t.threads {
		if th.tid == t.pid {
			return th.core
		}
	}
	return nil // readTasks makes this unreachable
}

// errImage: the images cannot be read as CRIU would read them.
func errImage(name, format string, args ...any) error {
	return fmt.Errorf("CRIU image %s: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// readCRIUImage returns the entries of image name in root. ok is false when there is none (CRIU
// reads a missing image as an empty one). The image must be a regular file of at most
// criuMaxImageBytes with the given magic, after the common head magic unless it is the
// inventory, and whole entries (a 32-bit little-endian size, then that many bytes).
func readCRIUImage(fsys fs.FS, name, magicName string) (entries [][]byte, ok bool, err error) {
	// Stat first: a FIFO is not opened (it would block).
	fi, err := fs.Stat(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, errImage(name, "%v", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, errImage(name, "not a regular file")
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, false, errImage(name, "%v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, criuMaxImageBytes+1))
	if err != nil {
		return nil, false, errImage(name, "%v", err)
	}
	entries, err = SplitCRIUImage(b, magicName)
	if err != nil {
		return nil, false, errImage(name, "%v", err)
	}
	return entries, true, nil
}

// splitCRIUImage checks an image's magics and splits it into its entries.
func SplitCRIUImage(b []byte, magicName string) ([][]byte, error) {
	if len(b) > criuMaxImageBytes {
		return nil, fmt.Errorf("larger than %d bytes", criuMaxImageBytes)
	}
	word := func() (uint32, bool) {
		if len(b) < 4 {
			return 0, false
		}
		w := binary.LittleEndian.Uint32(b)
		b = b[4:]
		return w, true
	}
	if magicName != "INVENTORY" {
		if w, ok := word(); !ok || w != criuMagicOf("IMG_COMMON") {
			return nil, errors.New("no CRIU image head magic")
		}
	}
	if w, ok := word(); !ok || w != criuMagicOf(magicName) {
		return nil, fmt.Errorf("not a %s image", magicName)
	}
	var entries [][]byte
	for len(b) > 0 {
		n, ok := word()
		if !ok {
			return nil, errors.New("truncated entry size")
		}
		if uint64(n) > uint64(len(b)) {
			return nil, fmt.Errorf("entry of %d bytes, %d left", n, len(b))
		}
		entries = append(entries, b[:n])
		b = b[n:]
	}
	return entries, nil
}

// unmarshalCRIU decodes one entry. Fields this decoder does not know are refused: protobuf-c
// (CRIU) would keep a value that Go's proto2 decoder sets aside, such as an enum value newer
// than go-criu's (a seccomp mode), and the check would then judge another entry than the one
// CRIU restores. The registers of a thread are not security settings and are left alone.
func unmarshalCRIU(b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return err
	}
	if f := unknownField(m.ProtoReflect(), true); f != "" {
		return fmt.Errorf("a field this runtime does not know in %s (a CRIU newer than go-criu's image definitions, or an edited image)", f)
	}
	return nil
}

// criuRegisterFields are CoreEntry's per-architecture register sets.
var criuRegisterFields = []protoreflect.Name{"thread_info", "ti_arm", "ti_aarch64", "ti_ppc64", "ti_s390", "ti_mips", "ti_loongarch64", "ti_riscv64"}

func unknownField(m protoreflect.Message, top bool) string {
	if len(m.GetUnknown()) > 0 {
		return string(m.Descriptor().FullName())
	}
	var bad string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if top && m.Descriptor().FullName() == "core_entry" && slices.Contains(criuRegisterFields, fd.Name()) {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && bad == ""; i++ {
				bad = unknownField(l.Get(i).Message(), false)
			}
		} else {
			bad = unknownField(v.Message(), false)
		}
		return bad == ""
	})
	return bad
}

// readOne decodes the first entry of an image, the one CRIU reads (pb_read_one).
func readOne(fsys fs.FS, name, magicName string, m proto.Message) (bool, error) {
	entries, ok, err := readCRIUImage(fsys, name, magicName)
	if err != nil || !ok {
		return false, err
	}
	if len(entries) == 0 {
		return false, nil
	}
	if err := unmarshalCRIU(entries[0], m); err != nil {
		return false, errImage(name, "%v", err)
	}
	return true, nil
}

// loadCRIUImagesFS reads the images that the check judges (checkCheckpointImages gives an
// os.Root's: nothing is read outside the images directory).
func loadCRIUImagesFS(root fs.FS) (*criuImageSet, error) {
	set := &criuImageSet{mounts: map[uint32][]*mnt.MntEntry{}, kinds: map[string]bool{},
		programs: map[uint32]seccompProgram{}, chainChecked: map[uint32]error{}}
	if err := set.scan(root); err != nil {
		return nil, err
	}

	inv := &inventory.InventoryEntry{}
	if ok, err := readOne(root, "inventory.img", "INVENTORY", inv); err != nil {
		return nil, err
	} else if !ok {
		return nil, errImage("inventory.img", "missing")
	}
	if inv.GetImgVersion() != criuImagesV1_1 {
		return nil, errImage("inventory.img", "image format %d is not supported", inv.GetImgVersion())
	}
	if set.rootIDs = inv.GetRootIds(); set.rootIDs == nil {
		return nil, errImage("inventory.img", "no namespace ids of CRIU's own")
	}
	set.rootCgSet = inv.GetRootCgSet()

	if err := set.readTasks(root); err != nil {
		return nil, err
	}

	sc := &seccomp.SeccompEntry{}
	if _, err := readOne(root, "seccomp.img", "SECCOMP", sc); err != nil {
		return nil, err
	}
	set.filters = sc.GetSeccompFilters()

	cg := &cgroup.CgroupEntry{}
	if ok, err := readOne(root, "cgroup.img", "CGROUP", cg); err != nil {
		return nil, err
	} else if ok {
		set.cgroups = cg
	}
	return set, nil
}

// scan lists the images: every .img file must be one CRIU knows (a known magic, or a raw image
// by its name); the mount trees are read whole.
func (s *criuImageSet) scan(root fs.FS) error {
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	dir, ok := d.(fs.ReadDirFile)
	if !ok {
		return errors.New("the CRIU images are not in a directory")
	}
	n := 0
	for {
		entries, err := dir.ReadDir(4096)
		for _, e := range entries {
			if n++; n > criuMaxImageFiles {
				return fmt.Errorf("more than %d files in the CRIU images: %w", criuMaxImageFiles, errdefs.ErrInvalidArgument)
			}
			if err := s.scanOne(root, e); err != nil {
				return err
			}
		}
		if err == io.EOF || (err == nil && len(entries) == 0) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *criuImageSet) scanOne(root fs.FS, e fs.DirEntry) error {
	name := e.Name()
	if !strings.HasSuffix(name, ".img") || criuRawImage.MatchString(name) {
		return nil
	}
	if !e.Type().IsRegular() {
		return errImage(name, "not a regular file")
	}
	f, err := root.Open(name)
	if err != nil {
		return errImage(name, "%v", err)
	}
	var head [8]byte
	n, _ := io.ReadFull(f, head[:])
	f.Close()
	m := criuMagic()
	w0, w1 := uint64(binary.LittleEndian.Uint32(head[:])), uint64(binary.LittleEndian.Uint32(head[4:]))
	var kind string
	switch {
	case n >= 4 && name == "inventory.img" && w0 == m.ByName["INVENTORY"]:
		kind = "INVENTORY"
	case n == 8 && (w0 == m.ByName["IMG_COMMON"] || w0 == m.ByName["IMG_SERVICE"]):
		kind = m.ByValue[w1]
	}
	if kind == "" || kind == "IMG_COMMON" || kind == "IMG_SERVICE" {
		return errImage(name, "not an image CRIU writes")
	}
	s.kinds[kind] = true
	if kind == "MNTS" {
		id, ok := strings.CutPrefix(strings.TrimSuffix(name, ".img"), "mountpoints-")
		nsID, err := strconv.ParseUint(id, 10, 32)
		if !ok || err != nil || strconv.FormatUint(nsID, 10) != id {
			return errImage(name, "a mount tree of no namespace")
		}
		entries, _, err := readCRIUImage(root, name, "MNTS")
		if err != nil {
			return err
		}
		if len(s.mounts[uint32(nsID)])+len(entries) > criuMaxMounts {
			return errImage(name, "more than %d mounts", criuMaxMounts)
		}
		for _, e := range entries {
			me := &mnt.MntEntry{}
			if err := unmarshalCRIU(e, me); err != nil {
				return errImage(name, "%v", err)
			}
			s.mounts[uint32(nsID)] = append(s.mounts[uint32(nsID)], me)
		}
	}
	return nil
}

// readTasks reads the process tree and each thread's core image, as CRIU does: the tree's
// entries in order (the root first, every other after its parent), a core-<tid>.img per thread,
// an ids-<pid>.img per task (the root's required).
func (s *criuImageSet) readTasks(root fs.FS) error {
	entries, ok, err := readCRIUImage(root, "pstree.img", "PSTREE")
	if err != nil {
		return err
	}
	if !ok || len(entries) == 0 {
		return errImage("pstree.img", "no tasks")
	}
	seen := map[uint32]bool{}
	pids := map[uint32]bool{}
	threads := 0
	for i, e := range entries {
		pe := &pstree.PstreeEntry{}
		if err := unmarshalCRIU(e, pe); err != nil {
			return errImage("pstree.img", "%v", err)
		}
		t := &criuTask{pid: pe.GetPid(), ppid: pe.GetPpid()}
		switch {
		case t.pid == 0 || t.pid >= criuPidMax:
			return errImage("pstree.img", "pid %d", t.pid)
		case (i == 0) != (t.ppid == 0):
			return errImage("pstree.img", "task %d: the root task must come first, and be the only one without a parent", t.pid)
		case i > 0 && !pids[t.ppid]:
			return errImage("pstree.img", "task %d: parent %d is not before it", t.pid, t.ppid)
		case !slices.Contains(pe.GetThreads(), t.pid):
			return errImage("pstree.img", "task %d is not one of its threads", t.pid)
		}
		pids[t.pid] = true
		if threads += len(pe.GetThreads()); threads > criuMaxThreads {
			return errImage("pstree.img", "more than %d threads", criuMaxThreads)
		}
		for _, tid := range pe.GetThreads() {
			if tid == 0 || tid >= criuPidMax || seen[tid] {
				return errImage("pstree.img", "task %d: thread %d", t.pid, tid)
			}
			seen[tid] = true
			name := fmt.Sprintf("core-%d.img", tid)
			core := &criucore.CoreEntry{}
			if ok, err := readOne(root, name, "CORE", core); err != nil {
				return err
			} else if !ok {
				return errImage(name, "missing")
			}
			t.threads = append(t.threads, criuThread{tid: tid, core: core})
		}
		if t.leader().GetTc() == nil {
			return errImage(fmt.Sprintf("core-%d.img", t.pid), "no task state")
		}
		ids := &criucore.TaskKobjIdsEntry{}
		if ok, err := readOne(root, fmt.Sprintf("ids-%d.img", t.pid), "IDS", ids); err != nil {
			return err
		} else if ok {
			t.ids = ids
		} else if i == 0 {
			return errImage(fmt.Sprintf("ids-%d.img", t.pid), "missing for the root task")
		}
		s.tasks = append(s.tasks, t)
	}
	return nil
}

// Task states (compel/include/uapi/task-state.h).
const (
	criuTaskAlive   = 1
	criuTaskDead    = 2
	criuTaskStopped = 3
)

// restorePolicy is what the spec the container is created with lets its processes be.
type restorePolicy struct {
	spec *runtimespec.Spec
	// The spec's capability sets, and the ones a process of the container can reach: its
	// bounding set never grows; without no_new_privs an exec (of a set-user-ID-root file, of a
	// file with capabilities, or by root) can make any of the bounding set permitted; with it,
	// the permitted set never grows; the inheritable set is within the bounding set or the
	// spec's own.
	bnd, inh, prmCeil, inhCeil uint64
	allCaps                    bool // the spec sets no capabilities: runc leaves the process all
	nnp                        bool
	uid, gid                   uint32
	groups                     []uint32
	namespaces                 map[runtimespec.LinuxNamespaceType]bool
}

func capBits(names []string) uint64 {
	var b uint64
	for _, n := range names {
		if i := slices.Index(cap.Known(), n); i >= 0 {
			b |= 1 << i
		}
	}
	return b
}

func capNames(b uint64) string {
	var out []string
	for i := 0; i < 64; i++ {
		if b&(1<<i) != 0 {
			if n := cap.FromNumber(i); n != "" {
				out = append(out, n)
			} else {
				out = append(out, "capability "+strconv.Itoa(i))
			}
		}
	}
	return strings.Join(out, ", ")
}

func newRestorePolicy(spec *runtimespec.Spec) *restorePolicy {
	p := &restorePolicy{spec: spec, namespaces: map[runtimespec.LinuxNamespaceType]bool{}}
	if pr := spec.Process; pr != nil {
		p.nnp = pr.NoNewPrivileges
		p.uid, p.gid = pr.User.UID, pr.User.GID
		p.groups = append([]uint32{pr.User.GID}, pr.User.AdditionalGids...)
		if c := pr.Capabilities; c != nil {
			p.bnd, p.inh = capBits(c.Bounding), capBits(c.Inheritable)
			prm := capBits(c.Permitted) | capBits(c.Effective) | capBits(c.Ambient)
			p.inhCeil = p.inh | p.bnd
			p.prmCeil = prm
			if !p.nnp {
				p.prmCeil |= p.bnd | p.inh
			}
		} else {
			p.allCaps = true
		}
	} else {
		p.allCaps = true
	}
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			p.namespaces[ns.Type] = true
		}
	}
	return p
}

func (p *restorePolicy) mayHave(c string) bool {
	return p.allCaps || p.prmCeil&capBits([]string{c}) != 0
}

// checkCheckpointImages checks the CRIU images in dir against the spec the container is
// created with: nil, or why the checkpoint would restore a container the spec does not describe
// (InvalidArgument).
func CheckCheckpointImages(dir string, spec *runtimespec.Spec) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return checkImagesFS(root.FS(), spec)
}

func checkImagesFS(fsys fs.FS, spec *runtimespec.Spec) error {
	set, err := loadCRIUImagesFS(fsys)
	if err != nil {
		return err
	}
	if err := set.check(newRestorePolicy(spec)); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (s *criuImageSet) check(p *restorePolicy) error {
	for _, k := range []string{"APPARMOR", "BINFMT_MISC"} {
		if s.kinds[k] {
			// AppArmor policy namespaces and binfmt_misc entries are loaded into the host's
			// kernel by CRIU itself.
			return fmt.Errorf("the checkpoint has %s images: CRIU would load them into the host's kernel", strings.ToLower(k))
		}
	}
	if s.kinds["BPFMAP_FILE"] && !p.mayHave("CAP_BPF") && !p.mayHave("CAP_SYS_ADMIN") {
		return errors.New("the checkpoint has BPF maps, which the container cannot create (no CAP_BPF)")
	}
	root := s.tasks[0]
	for _, t := range s.tasks {
		if err := s.checkNamespaces(p, root, t); err != nil {
			return fmt.Errorf("task %d: %w", t.pid, err)
		}
		tc := t.leader().GetTc()
		switch tc.GetTaskState() {
		case criuTaskDead:
			continue // a zombie: CRIU recreates it dead
		case criuTaskAlive, criuTaskStopped:
		default:
			return fmt.Errorf("task %d: task state %d", t.pid, tc.GetTaskState())
		}
		if err := s.checkTask(p, t); err != nil {
			return fmt.Errorf("task %d: %w", t.pid, err)
		}
		for _, th := range t.threads {
			if err := s.checkThread(p, th, th.tid == t.pid); err != nil {
				return fmt.Errorf("task %d, thread %d: %w", t.pid, th.tid, err)
			}
		}
	}
	if err := s.checkCgroups(); err != nil {
		return err
	}
	return s.checkMounts(p, root)
}

// nsKinds are the namespaces whose layout CRIU takes from the tasks' ids (criu/pstree.c
// get_clone_mask), with the spec's name of each.
var nsKinds = []struct {
	typ runtimespec.LinuxNamespaceType
	id  func(*criucore.TaskKobjIdsEntry) uint32
}{
	{runtimespec.PIDNamespace, (*criucore.TaskKobjIdsEntry).GetPidNsId},
	{runtimespec.NetworkNamespace, (*criucore.TaskKobjIdsEntry).GetNetNsId},
	{runtimespec.IPCNamespace, (*criucore.TaskKobjIdsEntry).GetIpcNsId},
	{runtimespec.UTSNamespace, (*criucore.TaskKobjIdsEntry).GetUtsNsId},
	{runtimespec.MountNamespace, (*criucore.TaskKobjIdsEntry).GetMntNsId},
	{runtimespec.UserNamespace, (*criucore.TaskKobjIdsEntry).GetUserNsId},
	{runtimespec.TimeNamespace, (*criucore.TaskKobjIdsEntry).GetTimeNsId},
}

// checkNamespaces: CRIU leaves a task in its own (the host's) namespace of a kind when the
// task's id of it is the one CRIU had at dump time, and makes a new one from the images when it
// is another. A task must not stay in the host's namespace of a kind the spec gives the
// container (the pod's network, its own mounts and pids...), and no user namespace may come from
// the images when the spec has none: its id mappings would be the archive's. A task in a mount
// namespace of its own (a nested one) is one the container could only have made with
// CAP_SYS_ADMIN; its mount tree would lack the spec's masks.
func (s *criuImageSet) checkNamespaces(p *restorePolicy, root, t *criuTask) error {
	if t.ids == nil {
		return nil // it is in its parent's
	}
	for _, k := range nsKinds {
		host := k.id(s.rootIDs) == k.id(t.ids)
		if p.namespaces[k.typ] && host {
			return fmt.Errorf("it would be restored in the host's %s namespace, where the container has its own", k.typ)
		}
		if k.typ == runtimespec.UserNamespace && !p.namespaces[k.typ] && !host {
			return errors.New("it is in a user namespace, and the container has none")
		}
	}
	if root.ids != nil && t.ids.GetMntNsId() != root.ids.GetMntNsId() && !p.mayHave("CAP_SYS_ADMIN") {
		return errors.New("it is in a mount namespace of its own, which the container cannot make (no CAP_SYS_ADMIN)")
	}
	return nil
}

// rlimitNames are the spec's names of the resource limits, by their number (the same on every
// Linux architecture).
var rlimitNames = []string{"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
	"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING",
	"RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"}

// checkTask: what CRIU restores per task that a process cannot raise without a capability: a
// lower OOM score adjustment than runc set (CAP_SYS_RESOURCE), hard resource limits above the
// spec's (CAP_SYS_RESOURCE).
func (s *criuImageSet) checkTask(p *restorePolicy, t *criuTask) error {
	tc := t.leader().GetTc()
	if p.mayHave("CAP_SYS_RESOURCE") || p.spec.Process == nil {
		return nil
	}
	if adj := p.spec.Process.OOMScoreAdj; adj != nil && tc.OomScoreAdj != nil && tc.GetOomScoreAdj() < int32(*adj) {
		return fmt.Errorf("OOM score adjustment %d is below the container's %d (no CAP_SYS_RESOURCE)", tc.GetOomScoreAdj(), *adj)
	}
	for i, rl := range tc.GetRlimits().GetRlimits() {
		if i >= len(rlimitNames) {
			break
		}
		for _, want := range p.spec.Process.Rlimits {
			if want.Type == rlimitNames[i] && rl.GetMax() > want.Hard {
				return fmt.Errorf("hard %s %d is above the container's %d (no CAP_SYS_RESOURCE)", want.Type, rl.GetMax(), want.Hard)
			}
		}
	}
	return nil
}

// Scheduling policies that need CAP_SYS_NICE (linux/sched.h).
const (
	schedFIFO, schedRR, schedDeadline = 1, 2, 6
	schedResetOnFork                  = 0x40000000
)

// checkThread checks the credentials, seccomp filters and scheduling CRIU gives a thread.
func (s *criuImageSet) checkThread(p *restorePolicy, th criuThread, leader bool) error {
	tcore := th.core.GetThreadCore()
	if tcore == nil || tcore.GetCreds() == nil {
		// CRIU would take the leader's credentials from creds-<pid>.img (the format of CRIU
		// before 2.x), or leave the thread CRIU's own: all capabilities.
		return errors.New("no credentials in its core image")
	}
	if err := p.checkCreds(tcore.GetCreds()); err != nil {
		return err
	}
	if err := s.checkSeccomp(p, th, leader); err != nil {
		return err
	}
	if !p.mayHave("CAP_SYS_NICE") {
		switch tcore.GetSchedPolicy() &^ schedResetOnFork {
		case schedFIFO, schedRR, schedDeadline:
			return fmt.Errorf("real-time scheduling policy %d (no CAP_SYS_NICE)", tcore.GetSchedPolicy())
		}
		if tcore.GetSchedNice() < 0 {
			return fmt.Errorf("nice %d (no CAP_SYS_NICE)", tcore.GetSchedNice())
		}
	}
	return nil
}

// capsOf is a capability set of an image: CRIU copies at most two 32-bit words.
func capsOf(words []uint32) uint64 {
	var b uint64
	for i, w := range words {
		if i == 2 {
			break
		}
		b |= uint64(w) << (32 * i)
	}
	return b
}

// checkCreds: the capability sets within what the spec lets a process of the container reach,
// no_new_privs as the spec sets it, the ids the spec's user unless the process could change them,
// the spec's LSM label.
func (p *restorePolicy) checkCreds(c *creds.CredsEntry) error {
	if !p.allCaps {
		for _, set := range []struct {
			name string
			caps []uint32
			max  uint64
		}{
			{"bounding", c.GetCapBnd(), p.bnd},
			{"inheritable", c.GetCapInh(), p.inhCeil},
			{"permitted", c.GetCapPrm(), p.prmCeil},
			{"effective", c.GetCapEff(), p.prmCeil},
			{"ambient", c.GetCapAmb(), p.prmCeil & p.inhCeil},
		} {
			if extra := capsOf(set.caps) &^ set.max; extra != 0 {
				return fmt.Errorf("%s capabilities %s: more than the container's", set.name, capNames(extra))
			}
		}
	}
	if p.nnp && c.GetNoNewPrivs() == 0 {
		return errors.New("no_new_privs is off, and the container has it set")
	}
	// Without no_new_privs, an exec of a set-user-ID file (su, mount, passwd are in most images)
	// changes the effective and saved ids to its owner's, and then the real one too: every id
	// is reachable and the ids are not checked; the capabilities above bound what root can do.
	// With it and without CAP_SETUID/CAP_SETGID, the ids are the spec's for good.
	if p.nnp && !p.mayHave("CAP_SETUID") {
		for _, id := range []uint32{c.GetUid(), c.GetEuid(), c.GetSuid(), c.GetFsuid()} {
			if id != p.uid {
				return fmt.Errorf("user id %d: the container runs as %d, has no_new_privs and no CAP_SETUID", id, p.uid)
			}
		}
	}
	if p.nnp && !p.mayHave("CAP_SETGID") {
		for _, id := range append([]uint32{c.GetGid(), c.GetEgid(), c.GetSgid(), c.GetFsgid()}, c.GetGroups()...) {
			if !slices.Contains(p.groups, id) {
				return fmt.Errorf("group id %d: not one of the container's (%v), which has no_new_privs and no CAP_SETGID", id, p.groups)
			}
		}
	}
	// runc restore does not pass the spec's LSM label to CRIU: CRIU sets the image's, or none
	// (the thread keeps CRIU's, unconfined) when the image has none.
	if p.spec.Process != nil {
		if want := p.spec.Process.ApparmorProfile; want != "" && c.GetLsmProfile() != want {
			return fmt.Errorf("AppArmor profile %q, and the container's is %q", c.GetLsmProfile(), want)
		}
		if want := p.spec.Process.SelinuxLabel; want != "" && c.GetLsmProfile() != want {
			return fmt.Errorf("SELinux label %q, and the container's is %q", c.GetLsmProfile(), want)
		}
		if sc := c.GetLsmSockcreate(); sc != "" && sc != p.spec.Process.SelinuxLabel {
			return fmt.Errorf("socket creation label %q", sc)
		}
	}
	if len(c.GetApparmorData()) > 0 {
		return errors.New("AppArmor namespace data")
	}
	return nil
}

// checkSeccomp: the thread's seccomp state as CRIU restores it (for a leader, the per-task
// fields of old images override the per-thread ones: criu/cr-restore.c check_core). Its filter
// chain must be one CRIU can walk (indexes in range, no loop: CRIU follows it without a bound).
// When the spec has a profile, the thread must be filtered (or in strict mode), and its filters
// must refuse what the profile refuses (checkpoint_seccomp.go).
func (s *criuImageSet) checkSeccomp(p *restorePolicy, th criuThread, leader bool) error {
	tcore := th.core.GetThreadCore()
	mode, idx := tcore.GetSeccompMode(), tcore.GetSeccompFilter()
	if tc := th.core.GetTc(); leader && tc != nil {
		if tc.OldSeccompMode != nil {
			mode = tc.GetOldSeccompMode()
		}
		if tc.OldSeccompFilter != nil {
			idx = tc.GetOldSeccompFilter()
		}
	}
	if mode != criucore.SeccompMode_filter {
		if prof := p.spec.Linux; prof != nil && prof.Seccomp != nil && mode != criucore.SeccompMode_strict {
			return errors.New("no seccomp filter, and the container has a seccomp profile")
		}
		// No profile, or strict mode (read, write, exit and sigreturn only: less than any
		// profile allows).
		return nil
	}
	// Threads share their filters: each chain is judged once.
	if err, done := s.chainChecked[idx]; done {
		return err
	}
	err := s.checkSeccompChainAt(p, idx)
	s.chainChecked[idx] = err
	return err
}

// Bounds of the seccomp check: the kernel's (a thread's filters add up to at most
// MAX_INSNS_PER_PATH instructions, counting 4 more per filter; a chain over it is not
// installed), and the instructions of all the distinct chains judged (each is run on some 500
// probes; the threads of a container share one or a few chains).
const (
	seccompMaxInsnsPerPath = 32768
	seccompMaxCheckedInsns = 1 << 18
)

func (s *criuImageSet) checkSeccompChainAt(p *restorePolicy, idx uint32) error {
	var chain []seccompProgram
	seen := map[uint32]bool{}
	insns := 0
	for i, more := idx, true; more; {
		if i >= uint32(len(s.filters)) || seen[i] {
			return fmt.Errorf("seccomp filter chain at %d: out of range or a loop (%d filters)", i, len(s.filters))
		}
		seen[i] = true
		prog, ok := s.programs[i]
		if !ok {
			var err error
			if prog, err = parseSeccompProgram(s.filters[i].GetFilter()); err != nil {
				return fmt.Errorf("seccomp filter %d: %w", i, err)
			}
			s.programs[i] = prog
		}
		if insns += len(prog) + 4; insns > seccompMaxInsnsPerPath {
			return fmt.Errorf("seccomp filter chain at %d: more than the kernel's %d instructions", idx, seccompMaxInsnsPerPath)
		}
		chain = append(chain, prog)
		i, more = s.filters[i].GetPrev(), s.filters[i].Prev != nil
	}
	prof := p.spec.Linux
	if prof == nil || prof.Seccomp == nil {
		return nil
	}
	if s.checkedInsns += insns; s.checkedInsns > seccompMaxCheckedInsns {
		return fmt.Errorf("too many distinct seccomp filter chains to check (over %d instructions)", seccompMaxCheckedInsns)
	}
	return checkSeccompChain(prof.Seccomp, chain)
}

// checkCgroups: CRIU moves a task whose cgroup set is not its parent's into that set's cgroups,
// after rebasing the paths under the checkpointed container's cgroup (each controller's one
// directory in the image) onto the new container's (runc's --cgroup-root). A path it would not
// rebase stays a host path (the host's root cgroup, a sibling's): every member of every set a
// task is in must be under its controller's directory, whole path components, no "..".
func (s *criuImageSet) checkCgroups() error {
	used := map[uint32]bool{}
	for _, t := range s.tasks {
		for _, th := range t.threads {
			for _, id := range []uint32{th.core.GetTc().GetCgSet(), th.core.GetThreadCore().GetCgSet()} {
				if id != 0 {
					used[id] = true
				}
			}
		}
	}
	if s.cgroups == nil {
		return nil // no set to move a task into: CRIU leaves the tasks where runc put the first
	}
	dirs := map[string][]string{} // controller name -> its directories
	for _, c := range s.cgroups.GetControllers() {
		for _, name := range c.GetCnames() {
			if _, dup := dirs[name]; dup {
				return fmt.Errorf("cgroup controller %q is in the images twice", name)
			}
			for _, d := range c.GetDirs() {
				dirs[name] = append(dirs[name], d.GetDirName())
			}
		}
	}
	for _, set := range s.cgroups.GetSets() {
		if !used[set.GetId()] {
			continue
		}
		for _, m := range set.GetCtls() {
			p := m.GetPath()
			d := dirs[m.GetName()]
			if !cleanAbs(p) || len(d) != 1 || !cleanRel(d[0]) || (p[1:] != d[0] && !strings.HasPrefix(p[1:], d[0]+"/")) {
				return fmt.Errorf("cgroup %s of controller %q: not under the checkpointed container's cgroup", p, m.GetName())
			}
			if m.CgnsPrefix != nil && m.GetCgnsPrefix() > 0 {
				n := int(m.GetCgnsPrefix())
				if n > len(p) || (n < len(p) && p[n] != '/') {
					return fmt.Errorf("cgroup %s of controller %q: cgroup namespace prefix %d", p, m.GetName(), n)
				}
			}
		}
	}
	return nil
}

// cleanAbs: an absolute path without "." or ".." components or doubled slashes.
func cleanAbs(p string) bool {
	return strings.HasPrefix(p, "/") && path.Clean(p) == p && !slices.Contains(strings.Split(p, "/"), "..")
}

// cleanRel: a relative path without "." or ".." components.
func cleanRel(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p && p != "." && !slices.Contains(strings.Split(p, "/"), "..")
}

// Mount flags (linux/mount.h).
const MsRdonly = 0x1

// mountFstypes are the file systems CRIU may mount anew in a restored container (criu/filesystems.c
// codes): the ones runc mounts itself. Others (devtmpfs: the host's devices; binfmt_misc;
// debugfs, tracefs, securityfs, pstore; overlayfs and "auto" file systems named by the image,
// from sources the image names) are refused.
var mountFstypes = map[uint32]string{
	uint32(mnt.Fstype_PROC): "proc", uint32(mnt.Fstype_SYSFS): "sysfs", uint32(mnt.Fstype_TMPFS): "tmpfs",
	uint32(mnt.Fstype_DEVPTS): "devpts", uint32(mnt.Fstype_MQUEUE): "mqueue", uint32(mnt.Fstype_CGROUP2): "cgroup2",
}

// checkMounts checks the mount trees CRIU would restore. runc gives CRIU the sources of the
// spec's bind mounts (external mounts, by destination) and the root; every other mount and
// every mount's flags come from the images: the tree must be the one runc makes from the spec.
func (s *criuImageSet) checkMounts(p *restorePolicy, root *criuTask) error {
	rootNs := root.ids.GetMntNsId()
	if p.namespaces[runtimespec.MountNamespace] && len(s.mounts[rootNs]) == 0 {
		// CRIU would build the container's mount namespace from nothing: whatever it makes of
		// that, the spec's masks are not in it.
		return fmt.Errorf("no mount tree for the root task's mount namespace (%d)", rootNs)
	}
	for ns, mounts := range s.mounts {
		if err := p.checkMountTree(mounts, ns == rootNs); err != nil {
			return fmt.Errorf("mount tree %d: %w", ns, err)
		}
	}
	return nil
}

func (p *restorePolicy) specMountAt(dst string) *runtimespec.Mount {
	for i := range p.spec.Mounts {
		if path.Clean(p.spec.Mounts[i].Destination) == dst {
			return &p.spec.Mounts[i]
		}
	}
	return nil
}

func (p *restorePolicy) specHasMount(typ string, rw bool) bool {
	for _, m := range p.spec.Mounts {
		if m.Type == typ && (!rw || !slices.Contains(m.Options, "ro")) {
			return true
		}
	}
	return false
}

// hostPathExists: whether a masked or read-only path of the spec is there in this kernel's
// proc and sys (runc skips the ones that are not).
var hostPathExists = func(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func (p *restorePolicy) checkMountTree(mounts []*mnt.MntEntry, main bool) error {
	byPoint := map[string]*mnt.MntEntry{}
	byID := map[uint32]*mnt.MntEntry{}
	for _, m := range mounts {
		mp := m.GetMountpoint()
		if !cleanAbs(mp) || !cleanAbs(m.GetRoot()) {
			return fmt.Errorf("mount at %q of %q: not a clean absolute path", mp, m.GetRoot())
		}
		if byPoint[mp] != nil {
			return fmt.Errorf("two mounts at %s", mp)
		}
		if byID[m.GetMntId()] != nil {
			return fmt.Errorf("two mounts with id %d", m.GetMntId())
		}
		byPoint[mp], byID[m.GetMntId()] = m, m
	}
	var rootMount *mnt.MntEntry
	for _, m := range mounts {
		mp := m.GetMountpoint()
		// Its parent is the mount holding its mount point: with no mount twice at a path, no
		// mount hides another (the masks stay on top).
		var want *mnt.MntEntry
		for q := mp; q != "/"; {
			q = path.Dir(q)
			if want = byPoint[q]; want != nil {
				break
			}
		}
		if parent := byID[m.GetParentMntId()]; parent != want || (mp == "/") != (parent == nil) {
			return fmt.Errorf("mount at %s is not on the mount holding its path", mp)
		}
		if parent := byID[m.GetParentMntId()]; parent == nil {
			rootMount = m
			continue // the root: runc's rootfs (CRIU's --root)
		}
		if m.GetWithPlugin() {
			return fmt.Errorf("mount at %s is restored by a CRIU plugin", mp)
		}
		ro := m.GetFlags()&MsRdonly != 0
		if sm := p.specMountAt(mp); sm != nil && isBindMount(sm) && slices.Contains(sm.Options, "ro") && !ro {
			return fmt.Errorf("mount at %s is writable, the container's is read-only", mp)
		}
		if fromExternal(mounts, m) {
			continue // a bind of (part of) the source runc gives for the spec's mount at its key
		}
		fstype := m.GetFstype()
		name, ok := mountFstypes[fstype]
		if !ok {
			return fmt.Errorf("mount at %s: file system type %d (%s %q) is not one runc mounts", mp, fstype,
				mnt.Fstype(int32(fstype)).String(), m.GetFsname())
		}
		switch {
		case name == "sysfs" && !ro && !p.specHasMount("sysfs", true):
			return fmt.Errorf("mount at %s: sysfs is writable, the container's is read-only", mp)
		case name == "cgroup2" && !ro && !p.specHasMount("cgroup", true) && !p.specHasMount("cgroup2", true):
			return fmt.Errorf("mount at %s: the cgroup file system is writable, the container's is read-only", mp)
		case name == "proc" && m.GetRoot() != "/" && !ro:
			return fmt.Errorf("mount at %s: a writable bind of /proc%s (runc's binds in /proc are read-only)", mp, m.GetRoot())
		case (name == "proc" || name == "sysfs") && m.GetRoot() == "/" && !p.specHasMountAt(name, mp):
			return fmt.Errorf("mount at %s: a %s the container does not have there", mp, name)
		}
	}
	if rootMount == nil {
		return errors.New("no root mount")
	}
	if !main {
		return nil
	}
	if p.spec.Root != nil && p.spec.Root.Readonly && rootMount.GetFlags()&MsRdonly == 0 {
		return errors.New("the root file system is writable, the container's is read-only")
	}
	if p.spec.Linux == nil {
		return nil
	}
	for _, mp := range p.spec.Linux.MaskedPaths {
		mp = path.Clean(mp)
		if !hostPathExists(mp) {
			continue
		}
		m := byPoint[mp]
		if m == nil || (!fromExternal(mounts, m) && m.GetFstype() != uint32(mnt.Fstype_TMPFS)) {
			return fmt.Errorf("%s is not masked, and the container's spec masks it", mp)
		}
	}
	for _, mp := range p.spec.Linux.ReadonlyPaths {
		mp = path.Clean(mp)
		if !hostPathExists(mp) {
			continue
		}
		if m := byPoint[mp]; m == nil || m.GetFlags()&MsRdonly == 0 {
			return fmt.Errorf("%s is not read-only, and the container's spec makes it so", mp)
		}
	}
	return nil
}

func isBindMount(m *runtimespec.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

func isExternal(m *mnt.MntEntry) bool { return m.GetExtKey() != "" || m.GetExtMount() }

// fromExternal: m is an external mount, or a bind of part of one (the same file system, its
// root within the external mount's), which CRIU makes from the source runc gives (runc's masks
// bind /dev/null, itself a bind of the host's in a user namespace, over files).
func fromExternal(mounts []*mnt.MntEntry, m *mnt.MntEntry) bool {
	if isExternal(m) {
		return true
	}
	for _, e := range mounts {
		if isExternal(e) && e.GetRootDev() == m.GetRootDev() &&
			(m.GetRoot() == e.GetRoot() || strings.HasPrefix(m.GetRoot(), strings.TrimSuffix(e.GetRoot(), "/")+"/")) {
			return true
		}
	}
	return false
}

func (p *restorePolicy) specHasMountAt(typ, dst string) bool {
	m := p.specMountAt(dst)
	return m != nil && m.Type == typ
}
