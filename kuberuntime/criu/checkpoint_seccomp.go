package criu

import (
	"encoding/binary"
	"errors"
	"fmt"
	goruntime "runtime"
	"slices"

	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
)

// The seccomp filters of a checkpoint. CRIU installs the filters its images give each thread;
// runc installs none on restore. runc's own filter for the spec cannot be rebuilt here (it is
// libseccomp's compilation of the profile, a cgo library, and its output differs between
// libseccomp and runc versions), so the archive's filters are not compared with it byte for
// byte: they are run, with the kernel's semantics, on the calls a container must not make
// (criuProbeSyscalls) on every architecture the kernel accepts calls of, and each call the
// spec's profile denies must be denied by the archive's filters too.

// seccompData is the kernel's struct seccomp_data, as 16 native-endian words (a filter loads
// only aligned words of it).
type seccompData [16]uint32

func newSeccompData(arch, nr uint32, args [6]uint64) seccompData {
	var d seccompData
	d[0], d[1] = nr, arch
	for i, a := range args {
		d[4+2*i], d[5+2*i] = uint32(a), uint32(a>>32) // little-endian: the low word first
	}
	return d
}

// Classic BPF opcodes (linux/filter.h), the ones seccomp accepts.
const (
	bpfLD, bpfLDX, bpfST, bpfSTX, bpfALU, bpfJMP, bpfRET, bpfMISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07

	bpfW                  = 0x00
	bpfIMM, bpfABS        = 0x00, 0x20
	bpfMEM, bpfLEN        = 0x60, 0x80
	bpfK, bpfX, bpfA      = 0x00, 0x08, 0x10
	bpfADD, bpfSUB        = 0x00, 0x10
	bpfMUL, bpfDIV        = 0x20, 0x30
	bpfOR, bpfAND         = 0x40, 0x50
	bpfLSH, bpfRSH        = 0x60, 0x70
	bpfNEG, bpfXOR        = 0x80, 0xa0
	bpfJA, bpfJEQ, bpfJGT = 0x00, 0x10, 0x20
	bpfJGE, bpfJSET       = 0x30, 0x40
	bpfTAX, bpfTXA        = 0x00, 0x80

	bpfMaxInsns = 4096 // BPF_MAXINSNS
	bpfMemWords = 16   // BPF_MEMWORDS
)

// bpfInsn is a struct sock_filter.
type bpfInsn struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// seccompProgram is a filter the kernel would load: decoded, and checked as seccomp_check_filter
// and bpf_check_classic check it.
type seccompProgram []bpfInsn

// parseSeccompProgram decodes a filter as CRIU gives it to seccomp(): struct sock_filter array
// in native byte order.
func parseSeccompProgram(b []byte) (seccompProgram, error) {
	if len(b) == 0 || len(b)%8 != 0 || len(b)/8 > bpfMaxInsns {
		return nil, fmt.Errorf("a filter of %d bytes", len(b))
	}
	p := make(seccompProgram, len(b)/8)
	for i := range p {
		w := b[8*i:]
		p[i] = bpfInsn{Code: binary.LittleEndian.Uint16(w), Jt: w[2], Jf: w[3], K: binary.LittleEndian.Uint32(w[4:])}
	}
	for i, in := range p {
		left := uint32(len(p) - i - 1) // instructions after this one
		switch in.Code {
		case bpfLD | bpfW | bpfABS:
			if in.K >= 64 || in.K%4 != 0 {
				return nil, fmt.Errorf("instruction %d loads at offset %d", i, in.K)
			}
		case bpfLD | bpfW | bpfLEN, bpfLDX | bpfW | bpfLEN, bpfRET | bpfK, bpfRET | bpfA,
			bpfALU | bpfADD | bpfK, bpfALU | bpfADD | bpfX, bpfALU | bpfSUB | bpfK, bpfALU | bpfSUB | bpfX,
			bpfALU | bpfMUL | bpfK, bpfALU | bpfMUL | bpfX, bpfALU | bpfDIV | bpfX,
			bpfALU | bpfAND | bpfK, bpfALU | bpfAND | bpfX, bpfALU | bpfOR | bpfK, bpfALU | bpfOR | bpfX,
			bpfALU | bpfXOR | bpfK, bpfALU | bpfXOR | bpfX, bpfALU | bpfLSH | bpfX, bpfALU | bpfRSH | bpfX,
			bpfALU | bpfNEG, bpfLD | bpfIMM, bpfLDX | bpfIMM, bpfMISC | bpfTAX, bpfMISC | bpfTXA:
		case bpfALU | bpfDIV | bpfK:
			if in.K == 0 {
				return nil, fmt.Errorf("instruction %d divides by zero", i)
			}
		case bpfALU | bpfLSH | bpfK, bpfALU | bpfRSH | bpfK:
			if in.K >= 32 {
				return nil, fmt.Errorf("instruction %d shifts by %d", i, in.K)
			}
		case bpfLD | bpfMEM, bpfLDX | bpfMEM, bpfST, bpfSTX:
			if in.K >= bpfMemWords {
				return nil, fmt.Errorf("instruction %d uses scratch word %d", i, in.K)
			}
		case bpfJMP | bpfJA:
			if in.K >= left {
				return nil, fmt.Errorf("instruction %d jumps out of the filter", i)
			}
		case bpfJMP | bpfJEQ | bpfK, bpfJMP | bpfJEQ | bpfX, bpfJMP | bpfJGE | bpfK, bpfJMP | bpfJGE | bpfX,
			bpfJMP | bpfJGT | bpfK, bpfJMP | bpfJGT | bpfX, bpfJMP | bpfJSET | bpfK, bpfJMP | bpfJSET | bpfX:
			if uint32(in.Jt) >= left || uint32(in.Jf) >= left {
				return nil, fmt.Errorf("instruction %d jumps out of the filter", i)
			}
		default:
			return nil, fmt.Errorf("instruction %d: opcode %#x is not allowed in a seccomp filter", i, in.Code)
		}
	}
	if last := p[len(p)-1].Code; last != bpfRET|bpfK && last != bpfRET|bpfA {
		return nil, errors.New("the filter does not end with a return")
	}
	return p, nil
}

// errSeccompUndefined: the result of a filter depends on how the kernel runs it (a shift by 32
// or more: its interpreter and its JITs differ), so no verdict can be given for it.
var errSeccompUndefined = errors.New("the filter shifts by 32 bits or more, whose result depends on the kernel")

// run is the filter's return value for d, as the kernel computes it (cBPF converted to 32-bit
// eBPF: unsigned arithmetic, division by zero returns 0). The program is loop-free (jumps go
// forward), so it ends after at most len(p) steps.
func (p seccompProgram) run(d *seccompData) (uint32, error) {
	var a, x uint32
	var mem [bpfMemWords]uint32
	for pc := 0; pc < len(p); pc++ {
		in := p[pc]
		src := in.K
		if in.Code&0x08 == bpfX {
			src = x
		}
		switch in.Code {
		case bpfLD | bpfW | bpfABS:
			a = d[in.K/4]
		case bpfLD | bpfW | bpfLEN:
			a = 64
		case bpfLDX | bpfW | bpfLEN:
			x = 64
		case bpfLD | bpfIMM:
			a = in.K
		case bpfLDX | bpfIMM:
			x = in.K
		case bpfLD | bpfMEM:
			a = mem[in.K]
		case bpfLDX | bpfMEM:
			x = mem[in.K]
		case bpfST:
			mem[in.K] = a
		case bpfSTX:
			mem[in.K] = x
		case bpfMISC | bpfTAX:
			x = a
		case bpfMISC | bpfTXA:
			a = x
		case bpfRET | bpfK:
			return in.K, nil
		case bpfRET | bpfA:
			return a, nil
		case bpfALU | bpfNEG:
			a = -a
		case bpfJMP | bpfJA:
			pc += int(in.K)
		default:
			switch in.Code & 0x07 {
			case bpfALU:
				switch in.Code & 0xf0 {
				case bpfADD:
					a += src
				case bpfSUB:
					a -= src
				case bpfMUL:
					a *= src
				case bpfDIV:
					if src == 0 {
						return 0, nil
					}
					a /= src
				case bpfAND:
					a &= src
				case bpfOR:
					a |= src
				case bpfXOR:
					a ^= src
				case bpfLSH, bpfRSH:
					if src >= 32 {
						return 0, errSeccompUndefined
					}
					if in.Code&0xf0 == bpfLSH {
						a <<= src
					} else {
						a >>= src
					}
				}
			case bpfJMP:
				var cond bool
				switch in.Code & 0xf0 {
				case bpfJEQ:
					cond = a == src
				case bpfJGT:
					cond = a > src
				case bpfJGE:
					cond = a >= src
				case bpfJSET:
					cond = a&src != 0
				}
				if cond {
					pc += int(in.Jt)
				} else {
					pc += int(in.Jf)
				}
			}
		}
	}
	return 0, errors.New("the filter ran past its end") // parseSeccompProgram makes this unreachable
}

// Seccomp return actions (linux/seccomp.h).
const (
	seccompRetKillProcess = 0x80000000
	seccompRetTrap        = 0x00030000
	seccompRetErrno       = 0x00050000
	seccompRetUserNotif   = 0x7fc00000
	seccompRetTrace       = 0x7ff00000
	seccompRetLog         = 0x7ffc0000
	seccompRetAllow       = 0x7fff0000
	seccompRetActionFull  = 0xffff0000
)

// seccompChainDenies runs a thread's filters (the newest first, as the kernel does) and tells
// whether the call is refused: killed, trapped or failed with an errno. The kernel takes the
// action of the highest precedence (the lowest as a signed value) among the filters' answers,
// and treats an action it does not know as a kill. A call handed to a tracer or a user-space
// notifier is not refused: whoever holds those may let it through.
func seccompChainDenies(chain []seccompProgram, d *seccompData) (bool, error) {
	ret := uint32(seccompRetAllow)
	for _, p := range chain {
		cur, err := p.run(d)
		if err != nil {
			return false, err
		}
		if int32(cur&seccompRetActionFull) < int32(ret&seccompRetActionFull) {
			ret = cur
		}
	}
	switch ret & seccompRetActionFull {
	case seccompRetAllow, seccompRetLog, seccompRetTrace, seccompRetUserNotif:
		return false, nil
	}
	return true, nil
}

// Audit architectures (linux/audit.h) and the x32 system call bit.
const (
	auditArchX8664   = 0xc000003e
	auditArchI386    = 0x40000003
	auditArchAarch64 = 0xc00000b7
	x32SyscallBit    = 0x40000000
)

// probeSyscall is a call a container must not make unless its profile lets it, with its number
// on each architecture a task on this host can make calls of (-1: none there). The numbers are
// those of golang.org/x/sys/unix (zsysnum_linux_{amd64,386,arm64}.go); x32 numbers are the amd64
// ones but for the calls with an x32-only entry (syscall_64.tbl, 512 and up).
type probeSyscall struct {
	Name                    string
	amd64, i386, x32, arm64 int
}

// criuProbeSyscalls: what the default profiles refuse a container without privileges: kernel
// keyrings, BPF, perf, userfaultfd, namespaces, mounts, tracing, modules, kexec, reboot, swap,
// accounting, clocks, NUMA policy, file handles.
var criuProbeSyscalls = []probeSyscall{
	{"acct", 163, 51, 163, 89},
	{"add_key", 248, 286, 248, 217},
	{"adjtimex", 159, 124, 159, 171},
	{"bpf", 321, 357, 321, 280},
	{"chroot", 161, 61, 161, 51},
	{"clock_adjtime", 305, 343, 305, 266},
	{"clock_settime", 227, 264, 227, 112},
	{"clone", 56, 120, 56, 220},
	{"clone3", 435, 435, 435, 435},
	{"delete_module", 176, 129, 176, 106},
	{"fanotify_init", 300, 338, 300, 262},
	{"finit_module", 313, 350, 313, 273},
	{"fsconfig", 431, 431, 431, 431},
	{"fsmount", 432, 432, 432, 432},
	{"fsopen", 430, 430, 430, 430},
	{"fspick", 433, 433, 433, 433},
	{"init_module", 175, 128, 175, 105},
	{"kcmp", 312, 349, 312, 272},
	{"kexec_file_load", 320, -1, 320, 294},
	{"kexec_load", 246, 283, 528, 104},
	{"keyctl", 250, 288, 250, 219},
	{"lookup_dcookie", 212, 253, 212, 18},
	{"mbind", 237, 274, 237, 235},
	{"mount", 165, 21, 165, 40},
	{"mount_setattr", 442, 442, 442, 442},
	{"move_mount", 429, 429, 429, 429},
	{"move_pages", 279, 317, 533, 239},
	{"name_to_handle_at", 303, 341, 303, 264},
	{"open_by_handle_at", 304, 342, 304, 265},
	{"open_tree", 428, 428, 428, 428},
	{"perf_event_open", 298, 336, 298, 241},
	{"pidfd_getfd", 438, 438, 438, 438},
	{"pivot_root", 155, 217, 155, 41},
	{"process_vm_readv", 310, 347, 539, 270},
	{"process_vm_writev", 311, 348, 540, 271},
	{"ptrace", 101, 26, 521, 117},
	{"quotactl", 179, 131, 179, 60},
	{"quotactl_fd", 443, 443, 443, 443},
	{"reboot", 169, 88, 169, 142},
	{"request_key", 249, 287, 249, 218},
	{"set_mempolicy", 238, 276, 238, 237},
	{"setdomainname", 171, 121, 171, 162},
	{"sethostname", 170, 74, 170, 161},
	{"setns", 308, 346, 308, 268},
	{"settimeofday", 164, 79, 164, 170},
	{"swapoff", 168, 115, 168, 225},
	{"swapon", 167, 87, 167, 224},
	{"syslog", 103, 103, 103, 116},
	{"umount2", 166, 52, 166, 39},
	{"unshare", 272, 310, 272, 97},
	{"userfaultfd", 323, 374, 323, 282},
	{"vhangup", 153, 111, 153, 58},
}

// probeArgs are the arguments each call is tried with: none set, all set, and every namespace
// flag (the argument profiles test for clone and unshare).
var probeArgs = [][6]uint64{
	{},
	{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)},
	{0x7e020000, 0x7e020000, 0x7e020000, 0x7e020000, 0x7e020000, 0x7e020000},
}

// probeArch is an architecture a task can make calls of on this host: its audit value, its
// libseccomp name, whether its arguments are 32-bit, and how a call's number is found.
type probeArch struct {
	Audit  uint32
	scmp   string
	native bool
	bits32 bool
	Nr     func(probeSyscall) int
}

// probeArches are the architectures of the host (GOARCH) a task can make calls of: on amd64 the
// native one, i386 (int 0x80) and x32; on arm64 the native one (AArch32 compat tasks are not
// probed: their call numbers are not tabled here). Elsewhere none: the filters are then only
// required to be there.
func probeArches() []probeArch {
	switch goruntime.GOARCH {
	case "amd64":
		return []probeArch{
			{auditArchX8664, "SCMP_ARCH_X86_64", true, false, func(s probeSyscall) int { return s.amd64 }},
			{auditArchI386, "SCMP_ARCH_X86", false, true, func(s probeSyscall) int { return s.i386 }},
			{auditArchX8664, "SCMP_ARCH_X32", false, false, func(s probeSyscall) int {
				if s.x32 < 0 {
					return -1
				}
				return s.x32 | x32SyscallBit
			}},
		}
	case "arm64":
		return []probeArch{{auditArchAarch64, "SCMP_ARCH_AARCH64", true, false, func(s probeSyscall) int { return s.arm64 }}}
	}
	return nil
}

// specDeniesCall tells whether the spec's profile refuses a call (by name, on an architecture,
// with arguments): as libseccomp builds the filter runc installs, a call of an architecture the
// profile does not list is refused; a rule applies when all its argument conditions hold; the
// call is let through if an applying rule's action lets it, else refused if an applying rule's
// action or (no rule applying) the default action refuses it.
func specDeniesCall(p *runtimespec.LinuxSeccomp, arch probeArch, name string, args [6]uint64) bool {
	if len(p.Architectures) == 0 {
		if !arch.native {
			return true
		}
	} else if !slices.Contains(p.Architectures, runtimespec.Arch(arch.scmp)) {
		return true
	}
	if arch.bits32 {
		for i := range args {
			args[i] &= 0xffffffff
		}
	}
	applies, allowed, denied := false, false, false
	for _, sc := range p.Syscalls {
		if !slices.Contains(sc.Names, name) || !seccompArgsHold(sc.Args, args) {
			continue
		}
		applies = true
		if seccompActionDenies(sc.Action) {
			denied = true
		} else {
			allowed = true
		}
	}
	if allowed {
		return false
	}
	if applies {
		return denied
	}
	return seccompActionDenies(p.DefaultAction)
}

// seccompActionDenies: the OCI actions that refuse a call (kill, trap, errno); allow, log,
// trace and notify do not.
func seccompActionDenies(a runtimespec.LinuxSeccompAction) bool {
	switch a {
	case runtimespec.ActAllow, runtimespec.ActLog, runtimespec.ActTrace, runtimespec.ActNotify:
		return false
	}
	return true
}

// seccompArgsHold: all of a rule's conditions hold for args (libseccomp's comparisons, on the
// 64-bit values).
func seccompArgsHold(conds []runtimespec.LinuxSeccompArg, args [6]uint64) bool {
	for _, c := range conds {
		if c.Index >= uint(len(args)) {
			return false
		}
		v := args[c.Index]
		var ok bool
		switch c.Op {
		case runtimespec.OpNotEqual:
			ok = v != c.Value
		case runtimespec.OpLessThan:
			ok = v < c.Value
		case runtimespec.OpLessEqual:
			ok = v <= c.Value
		case runtimespec.OpEqualTo:
			ok = v == c.Value
		case runtimespec.OpGreaterEqual:
			ok = v >= c.Value
		case runtimespec.OpGreaterThan:
			ok = v > c.Value
		case runtimespec.OpMaskedEqual:
			ok = v&c.Value == c.ValueTwo
		}
		if !ok {
			return false
		}
	}
	return true
}

// checkSeccompChain: every probed call the spec's profile refuses, the thread's filters refuse
// too. The answer names the first call let through.
func checkSeccompChain(p *runtimespec.LinuxSeccomp, chain []seccompProgram) error {
	for _, arch := range probeArches() {
		for _, sc := range criuProbeSyscalls {
			nr := arch.Nr(sc)
			if nr < 0 {
				continue
			}
			for _, args := range probeArgs {
				if !specDeniesCall(p, arch, sc.Name, args) {
					continue
				}
				d := newSeccompData(arch.Audit, uint32(nr), args)
				denied, err := seccompChainDenies(chain, &d)
				if err != nil {
					return err
				}
				if !denied {
					return fmt.Errorf("its seccomp filters let %s (%s) through, which the container's profile refuses", sc.Name, arch.scmp)
				}
			}
		}
	}
	return nil
}
