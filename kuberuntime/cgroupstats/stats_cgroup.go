package cgroupstats

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/legacy"
	"golang.org/x/sys/unix"
)

// cgroupFS reads the statistics of cgroups straight from the cgroup filesystem (the cgroupsPath of
// either cgroup driver, found by cgroupdriver.Dir): cgroup v1 with one hierarchy per controller
// (the hybrid layout included, where cgroup2 only serves as the systemd/unified tracking
// hierarchy), or pure cgroup v2.
type CgroupFS struct {
	// unified is pure cgroup v2, rooted at v2Root.
	Unified bool
	V2Root  string
	// v1 maps a v1 controller (cpuacct, memory, pids) to its hierarchy's mount point.
	V1 map[string]string
}

// detectCgroupFS finds the cgroup mounts of the host in /proc/self/mountinfo.
func DetectCgroupFS() *CgroupFS {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return &CgroupFS{Unified: true, V2Root: "/sys/fs/cgroup"}
	}
	defer f.Close()
	return ParseCgroupMounts(f)
}

// parseCgroupMounts reads a mountinfo table: the v1 controllers' mount points when any of the
// controllers stats need are mounted as v1, else the cgroup2 mount (the unified layout).
func ParseCgroupMounts(r io.Reader) *CgroupFS {
	fs := &CgroupFS{V1: map[string]string{}}
	var v2 string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 > len(fields) {
			continue
		}
		mountPoint, fsType := unescapeMountPath(fields[4]), fields[sep+1]
		switch fsType {
		case "cgroup2":
			if v2 == "" || mountPoint == "/sys/fs/cgroup" {
				v2 = mountPoint
			}
		case "cgroup":
			for _, opt := range strings.Split(fields[sep+3], ",") {
				switch opt {
				case "cpuacct", "cpu", "memory", "pids":
					if _, ok := fs.V1[opt]; !ok {
						fs.V1[opt] = mountPoint
					}
				}
			}
		}
	}
	if fs.V1["memory"] == "" && fs.V1["cpuacct"] == "" && v2 != "" {
		return &CgroupFS{Unified: true, V2Root: v2}
	}
	return fs
}

// unescapeMountPath undoes the octal escapes (\040 for a space ...) of mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupSample is what one read of a cgroup gives. The Has* flags tell which parts could be
// measured; what could not stays unset (and is not reported).
type CgroupSample struct {
	HasCPU bool
	// CPUUsageNanos is the cumulative CPU time of the cgroup, in core nanoseconds.
	CPUUsageNanos uint64

	HasMemory bool
	// MemoryUsage is the charged memory (page cache included); WorkingSet is MemoryUsage less the
	// inactive file pages (what the kubelet evicts on).
	MemoryUsage, WorkingSet, RSS, PageFaults, MajorPageFaults uint64
	// MemoryLimit is the limit, 0 when unlimited.
	MemoryLimit uint64

	HasSwap   bool
	SwapUsage uint64
	// SwapLimit is the swap the cgroup may use, 0 when unlimited or unknown.
	SwapLimit uint64

	HasPids bool
	Pids    uint64
}

// errCgroupGone tells that the cgroup does not exist (its container is not running).
var ErrCgroupGone = errors.New("cgroup does not exist")

// statReader reads cgroup files into a buffer it reuses; not safe for concurrent use.
type StatReader struct {
	fs  *CgroupFS
	buf []byte
	// fds are the files kept open, by path; gen counts the background sweeps.
	fds map[string]*openFile
	Gen uint64
}

func (fs *CgroupFS) Reader() *StatReader { return &StatReader{fs: fs, buf: make([]byte, 8192)} }

// readOpts choose the costlier parts of a reading: every file read is a few syscalls, and a node
// has hundreds of cgroups.
type ReadOpts struct {
	// pids reads the process count (pods report it; containers do not).
	Pids bool
	// limits reads the memory and swap limits (they change rarely: callers keep them a while).
	Limits bool
}

// read samples the cgroup at path (an OCI cgroupsPath of either driver: cgroupdriver.Dir finds it
// under each hierarchy's root). A cgroup missing from every hierarchy is errCgroupGone; a
// controller missing alone is left out of the sample.
func (r *StatReader) Read(path string, o ReadOpts) (CgroupSample, error) {
	var s CgroupSample
	path, ok := cgroupdriver.Dir(path)
	if !ok {
		return s, ErrCgroupGone
	}
	if r.fs.Unified {
		return r.readV2(filepath.Join(r.fs.V2Root, path), o)
	}
	return r.readV1(path, o)
}

func (r *StatReader) readV1(path string, o ReadOpts) (CgroupSample, error) {
	var s CgroupSample
	found := false
	if root := r.fs.V1["cpuacct"]; root != "" {
		if v, err := r.uint(filepath.Join(root, path, "cpuacct.usage")); err == nil {
			s.HasCPU, s.CPUUsageNanos, found = true, v, true
		}
	}
	if root := r.fs.V1["memory"]; root != "" {
		dir := filepath.Join(root, path)
		if usage, err := r.uint(filepath.Join(dir, "memory.usage_in_bytes")); err == nil {
			found = true
			if b, err := r.file(filepath.Join(dir, "memory.stat")); err == nil {
				s.HasMemory = true
				s.MemoryUsage = usage
				var inactive, rss, pgfault, pgmaj, swap uint64
				var haveTotal, haveSwap bool
				ForEachKV(b, func(k []byte, v uint64) {
					switch string(k) {
					case "total_inactive_file":
						inactive, haveTotal = v, true
					case "total_rss":
						rss = v
					case "total_pgfault":
						pgfault = v
					case "total_pgmajfault":
						pgmaj = v
					case "total_swap":
						swap, haveSwap = v, true
					}
				})
				if !haveTotal { // a kernel without hierarchical totals
					ForEachKV(b, func(k []byte, v uint64) {
						switch string(k) {
						case "inactive_file":
							inactive = v
						case "rss":
							rss = v
						case "pgfault":
							pgfault = v
						case "pgmajfault":
							pgmaj = v
						case "swap":
							swap, haveSwap = v, true
						}
					})
				}
				s.WorkingSet = Sub0(usage, inactive)
				s.RSS, s.PageFaults, s.MajorPageFaults = rss, pgfault, pgmaj
				// memory.stat shows swap only with swap accounting on.
				s.HasSwap, s.SwapUsage = haveSwap, swap
			}
			if o.Limits {
				if l, err := r.uint(filepath.Join(dir, "memory.limit_in_bytes")); err == nil && l < math.MaxInt64/2 {
					s.MemoryLimit = l
				}
				if l, err := r.uint(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil && l < math.MaxInt64/2 && s.MemoryLimit > 0 {
					s.SwapLimit = Sub0(l, s.MemoryLimit)
				}
			}
		}
	}
	if root := r.fs.V1["pids"]; root != "" && o.Pids {
		if v, err := r.uint(filepath.Join(root, path, "pids.current")); err == nil {
			s.HasPids, s.Pids, found = true, v, true
		}
	}
	if !found {
		return s, ErrCgroupGone
	}
	return s, nil
}

func (r *StatReader) readV2(dir string, o ReadOpts) (CgroupSample, error) {
	var s CgroupSample
	found := false
	if b, err := r.file(filepath.Join(dir, "cpu.stat")); err == nil {
		found = true
		ForEachKV(b, func(k []byte, v uint64) {
			if string(k) == "usage_usec" {
				s.HasCPU, s.CPUUsageNanos = true, v*1000
			}
		})
	}
	if usage, err := r.uint(filepath.Join(dir, "memory.current")); err == nil {
		found = true
		if b, err := r.file(filepath.Join(dir, "memory.stat")); err == nil {
			s.HasMemory, s.MemoryUsage = true, usage
			var inactive uint64
			ForEachKV(b, func(k []byte, v uint64) {
				switch string(k) {
				case "inactive_file":
					inactive = v
				case "anon":
					s.RSS = v
				case "pgfault":
					s.PageFaults = v
				case "pgmajfault":
					s.MajorPageFaults = v
				}
			})
			s.WorkingSet = Sub0(usage, inactive)
		}
		if sw, err := r.uint(filepath.Join(dir, "memory.swap.current")); err == nil {
			s.HasSwap, s.SwapUsage = true, sw
		}
		if o.Limits {
			if l, err := r.uint(filepath.Join(dir, "memory.max")); err == nil {
				s.MemoryLimit = l
			}
			if s.HasSwap {
				if l, err := r.uint(filepath.Join(dir, "memory.swap.max")); err == nil {
					s.SwapLimit = l
				}
			}
		}
	}
	if o.Pids {
		if v, err := r.uint(filepath.Join(dir, "pids.current")); err == nil {
			s.HasPids, s.Pids, found = true, v, true
		}
	}
	if !found {
		if _, err := os.Stat(dir); err != nil {
			return s, ErrCgroupGone
		}
	}
	return s, nil
}

// pids reads the process count of the cgroup at path.
func (r *StatReader) Pids(path string) (uint64, bool) {
	path, ok := cgroupdriver.Dir(path)
	if !ok {
		return 0, false
	}
	var file string
	if r.fs.Unified {
		file = filepath.Join(r.fs.V2Root, path, "pids.current")
	} else if root := r.fs.V1["pids"]; root != "" {
		file = filepath.Join(root, path, "pids.current")
	} else {
		return 0, false
	}
	v, err := r.uint(file)
	return v, err == nil
}

// file reads a whole (small) cgroup file into the reader's buffer; the result is valid until the
// next read. The file is kept open and read again from offset 0 (a cgroup file is generated anew
// by every read at 0): opening a cgroupfs path costs more than reading it.
func (r *StatReader) file(path string) ([]byte, error) {
	if r.fds == nil {
		r.fds = map[string]*openFile{}
	}
	f := r.fds[path]
	if f == nil {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		f = &openFile{fd: fd}
		r.fds[path] = f
	}
	f.gen = r.Gen
	b, err := r.pread(f.fd)
	if err != nil {
		// The cgroup was removed (ENODEV) or the file went bad: forget it.
		unix.Close(f.fd)
		delete(r.fds, path)
		return nil, err
	}
	return b, nil
}

func (r *StatReader) pread(fd int) ([]byte, error) {
	n := 0
	for {
		if n == len(r.buf) {
			r.buf = append(r.buf, make([]byte, len(r.buf))...)
		}
		m, err := unix.Pread(fd, r.buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return r.buf[:n], nil
		}
		n += m
		if n < len(r.buf) {
			// A cgroup file is generated whole on the first read (seq_file, single show):
			// a short read is the end, and saves a syscall per file.
			return r.buf[:n], nil
		}
	}
}

// openFile is a cgroup file the reader keeps open; gen is the generation it was last read in.
type openFile struct {
	fd  int
	gen uint64
}

// closeUnused closes the files not read since generation keep, and starts a new generation.
func (r *StatReader) CloseUnused(keep uint64) {
	for p, f := range r.fds {
		if f.gen < keep {
			unix.Close(f.fd)
			delete(r.fds, p)
		}
	}
	r.Gen++
}

// close closes every file the reader keeps open.
func (r *StatReader) Close() {
	r.CloseUnused(^uint64(0))
}

// uint reads a file holding one number; "max" (no limit) reads as 0.
func (r *StatReader) uint(path string) (uint64, error) {
	b, err := r.file(path)
	if err != nil {
		return 0, err
	}
	b = bytes.TrimSpace(b)
	if string(b) == "max" {
		return 0, nil
	}
	return strconv.ParseUint(string(b), 10, 64)
}

// forEachKV calls f for every "key value" line of a flat-keyed cgroup file.
func ForEachKV(b []byte, f func(k []byte, v uint64)) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 {
			continue
		}
		if v, ok := parseUint(line[sp+1:]); ok {
			f(line[:sp], v)
		}
	}
}

// parseUint parses a decimal number without allocating.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

func Sub0(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return 0
}

// netDevStats parses /proc/<pid>/net/dev: the counters of every interface of that process's
// network namespace but the loopback.
func ParseNetDev(b []byte) []legacy.InterfaceStats {
	var out []legacy.InterfaceStats
	for i, line := range bytes.Split(b, []byte{'\n'}) {
		if i < 2 { // two header lines
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := string(bytes.TrimSpace(line[:colon]))
		if name == "" || name == "lo" {
			continue
		}
		f := bytes.Fields(line[colon+1:])
		if len(f) < 16 {
			continue
		}
		var n [16]uint64
		ok := true
		for j := range n {
			if n[j], ok = parseUint(f[j]); !ok {
				break
			}
		}
		if !ok {
			continue
		}
		// receive: bytes packets errs drop fifo frame compressed multicast; transmit: the same.
		out = append(out, legacy.InterfaceStats{Name: name, RxBytes: n[0], RxPackets: n[1], RxErrors: n[2], RxDropped: n[3],
			TxBytes: n[8], TxPackets: n[9], TxErrors: n[10], TxDropped: n[11]})
	}
	return out
}
