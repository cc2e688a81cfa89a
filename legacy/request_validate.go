package legacy

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Validation of the CRI request fields a kubelet (or whoever can reach the socket) controls,
// beyond what the create paths need: sizes, control characters, paths that must be absolute and
// clean, numbers that must not be negative. A bad field is InvalidArgument before anything is
// made. The table tests in server/hostile_test.go go over each.

const (
	// maxMapBytes bounds the labels, and the annotations, of one object (keys and values
	// together): Kubernetes' limit on an object's annotations.
	maxMapBytes = 256 * 1024
	// maxArgBytes bounds a command line or environment (the kernel's ARG_MAX is 2 MiB).
	maxArgBytes = 1 << 20
	// maxPathLength bounds a path (PATH_MAX).
	maxPathLength = 4096
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidArgument)
}

// hasControl tells whether s holds a control character (NUL, newline, escape, DEL, ...).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// checkName checks a metadata name, namespace or uid: required, bounded, no '/' nor control
// character (they end up in labels, file names and log lines).
func checkName(what, v string) error {
	if v == "" {
		return invalid("%s is required", what)
	}
	if len(v) > maxNameLength {
		return invalid("%s longer than %d characters", what, maxNameLength)
	}
	if strings.Contains(v, "/") || hasControl(v) {
		return invalid("%s %q contains '/' or a control character", what, v)
	}
	return nil
}

// checkMap bounds a label or annotation map and refuses empty keys and NUL bytes.
func checkMap(what string, m map[string]string) error {
	n := 0
	for k, v := range m {
		if k == "" {
			return invalid("%s: empty key", what)
		}
		if strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return invalid("%s: NUL byte in %q", what, k)
		}
		n += len(k) + len(v)
	}
	if n > maxMapBytes {
		return invalid("%s: %d bytes, at most %d", what, n, maxMapBytes)
	}
	return nil
}

// checkAbsPath checks a path that must be absolute and clean of `..` components (a mount's or a
// device's path in the container, a host path).
func checkAbsPath(what, p string) error {
	if p == "" {
		return invalid("%s is required", what)
	}
	if len(p) > maxPathLength || strings.ContainsRune(p, 0) {
		return invalid("%s: too long or with a NUL byte", what)
	}
	if !path.IsAbs(p) {
		return invalid("%s %q is not an absolute path", what, p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return invalid("%s %q contains '..'", what, p)
		}
	}
	return nil
}

// checkArgs bounds a command or argument list and refuses NUL bytes (which exec cannot pass).
func checkArgs(what string, args []string) error {
	n := 0
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return invalid("%s: NUL byte in %q", what, a)
		}
		n += len(a) + 1
	}
	if n > maxArgBytes {
		return invalid("%s: %d bytes, at most %d", what, n, maxArgBytes)
	}
	return nil
}

// sysctlName is a sysctl name as Kubernetes validates it (dots or slashes between segments), so
// that a name cannot walk out of /proc/sys with `..` or an empty segment.
var sysctlName = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$`)

// ValidateResources checks container (or pod overhead) resources: no negative limits, an OOM
// score adjustment within [-1000, 1000], cpusets that are lists of ranges.
func ValidateResources(r *runtime.LinuxContainerResources) error {
	if r == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"cpu_period", r.GetCpuPeriod()}, {"cpu_shares", r.GetCpuShares()}, {"memory_limit_in_bytes", r.GetMemoryLimitInBytes()}} {
		if f.v < 0 {
			return invalid("resources: %s %d is negative", f.name, f.v)
		}
	}
	// -1 is "no limit" for the quota and the swap limit, as in the cgroup files.
	if q := r.GetCpuQuota(); q < -1 {
		return invalid("resources: cpu_quota %d is below -1", q)
	}
	if s := r.GetMemorySwapLimitInBytes(); s < -1 {
		return invalid("resources: memory_swap_limit_in_bytes %d is below -1", s)
	}
	if o := r.GetOomScoreAdj(); o < -1000 || o > 1000 {
		return invalid("resources: oom_score_adj %d outside [-1000, 1000]", o)
	}
	for _, c := range []struct{ name, v string }{{"cpuset_cpus", r.GetCpusetCpus()}, {"cpuset_mems", r.GetCpusetMems()}} {
		if c.v != "" && !cpusetList.MatchString(c.v) {
			return invalid("resources: %s %q is not a list of ranges", c.name, c.v)
		}
	}
	for _, h := range r.GetHugepageLimits() {
		if h.GetPageSize() == "" || hasControl(h.GetPageSize()) || strings.Contains(h.GetPageSize(), "/") {
			return invalid("resources: hugepage page_size %q", h.GetPageSize())
		}
	}
	for k, v := range r.GetUnified() {
		if k == "" || strings.Contains(k, "/") || strings.Contains(k, "..") || hasControl(k) || strings.ContainsRune(v, 0) {
			return invalid("resources: unified key %q", k)
		}
	}
	return nil
}

var cpusetList = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)

// validateSandboxFields checks the sandbox config fields ValidateSandboxConfig leaves to it.
func validateSandboxFields(config *runtime.PodSandboxConfig) error {
	if d := config.GetLogDirectory(); d != "" {
		if err := checkAbsPath("log_directory", d); err != nil {
			return err
		}
	}
	if err := checkMap("labels", config.GetLabels()); err != nil {
		return err
	}
	if err := checkMap("annotations", config.GetAnnotations()); err != nil {
		return err
	}
	if h := config.GetHostname(); hasControl(h) {
		return invalid("hostname %q contains a control character", h)
	}
	for _, pm := range config.GetPortMappings() {
		if pm.GetContainerPort() < 1 || pm.GetContainerPort() > 65535 {
			return invalid("port mapping: container_port %d outside 1-65535", pm.GetContainerPort())
		}
		if _, ok := runtime.Protocol_name[int32(pm.GetProtocol())]; !ok {
			return invalid("port mapping: unknown protocol %d", pm.GetProtocol())
		}
	}
	lx := config.GetLinux()
	if cg := lx.GetCgroupParent(); cg != "" && (len(cg) > maxPathLength || hasControl(cg) || strings.Contains("/"+cg+"/", "/../")) {
		return invalid("cgroup_parent %q", cg)
	}
	for k, v := range lx.GetSysctls() {
		if !sysctlName.MatchString(k) {
			return invalid("sysctl name %q", k)
		}
		if hasControl(v) {
			return invalid("sysctl %s: value with a control character", k)
		}
	}
	if err := ValidateResources(lx.GetResources()); err != nil {
		return err
	}
	return ValidateResources(lx.GetOverhead())
}

// validateContainerFields checks the container config fields ValidateContainerConfig leaves to
// it.
func validateContainerFields(config *runtime.ContainerConfig) error {
	if err := checkName("container metadata: name", config.GetMetadata().GetName()); err != nil {
		return err
	}
	if p := config.GetLogPath(); len(p) > maxPathLength || hasControl(p) {
		return invalid("log_path: too long or with a control character")
	}
	if err := checkArgs("command", config.GetCommand()); err != nil {
		return err
	}
	if err := checkArgs("args", config.GetArgs()); err != nil {
		return err
	}
	if w := config.GetWorkingDir(); w != "" {
		if err := checkAbsPath("working_dir", w); err != nil {
			return err
		}
	}
	envBytes := 0
	for _, kv := range config.GetEnvs() {
		if kv.GetKey() == "" || strings.ContainsAny(kv.GetKey(), "=\x00") || bytes.IndexByte(kv.GetValue(), 0) >= 0 {
			return invalid("env: bad variable %q", kv.GetKey())
		}
		envBytes += len(kv.GetKey()) + len(kv.GetValue()) + 2
	}
	if envBytes > maxArgBytes {
		return invalid("env: %d bytes, at most %d", envBytes, maxArgBytes)
	}
	if err := checkMap("labels", config.GetLabels()); err != nil {
		return err
	}
	if err := checkMap("annotations", config.GetAnnotations()); err != nil {
		return err
	}
	for _, m := range config.GetMounts() {
		if err := checkAbsPath("mount container_path", m.GetContainerPath()); err != nil {
			return err
		}
		if m.GetImage().GetImage() != "" && m.GetHostPath() == "" {
			continue // an image volume: no host path (the spec generation says Unimplemented)
		}
		if err := checkAbsPath("mount host_path", m.GetHostPath()); err != nil {
			return err
		}
	}
	for _, d := range config.GetDevices() {
		if err := checkAbsPath("device container_path", d.GetContainerPath()); err != nil {
			return err
		}
		if err := checkAbsPath("device host_path", d.GetHostPath()); err != nil {
			return err
		}
		if p := d.GetPermissions(); strings.Trim(p, "rwm") != "" {
			return invalid("device permissions %q: only r, w and m", p)
		}
	}
	return ValidateResources(config.GetLinux().GetResources())
}

// ValidateCommand checks an exec command: not empty, no NUL bytes, bounded.
func ValidateCommand(cmd []string) error {
	if len(cmd) == 0 {
		return invalid("cmd is required")
	}
	return checkArgs("cmd", cmd)
}
