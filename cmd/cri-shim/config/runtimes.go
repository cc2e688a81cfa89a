package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"
)

// RuncRuntimeType is the containerd shim that runs OCI runtimes with runc's command line (runc,
// crun, youki): the default runtime_type.
const RuncRuntimeType = "io.containerd.runc.v2"

// Runtime is one `[runtimes.<name>]` table: a runtime handler pods name (RuntimeClass handler), in
// the shape of containerd's `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.<name>]`.
type Runtime struct {
	RuntimeType                  string   `toml:"runtime_type" json:"runtime_type" doc:"the containerd shim; empty: io.containerd.runc.v2"`
	BinaryName                   string   `toml:"binary_name,omitempty" json:"binary_name,omitempty" doc:"the OCI runtime the runc shim runs (its BinaryName option), an absolute path or a name on PATH; empty: runc_binary for the handler runc, else runc on containerd's PATH"`
	SystemdCgroup                *bool    `toml:"systemd_cgroup,omitempty" json:"systemd_cgroup,omitempty" doc:"the runc shim's SystemdCgroup option; absent: from cgroup_driver, which it must agree with"`
	Snapshotter                  string   `toml:"snapshotter,omitempty" json:"snapshotter,omitempty" doc:"the snapshotter the handler's images are unpacked with; empty: containerd's default (overlayfs)"`
	PodAnnotations               []string `toml:"pod_annotations,omitempty" json:"pod_annotations,omitempty" doc:"pod annotations passed into the OCI specs of the pod's sandbox and containers: keys matching one of these patterns (path.Match, e.g. \"io.kubernetes.cri-o.*\")"`
	PrivilegedWithoutHostDevices bool     `toml:"privileged_without_host_devices" json:"privileged_without_host_devices" doc:"privileged containers get none of the host's devices (only those they request): for VM-based runtimes"`
	BaseRuntimeSpec              string   `toml:"base_runtime_spec,omitempty" json:"base_runtime_spec,omitempty" doc:"absolute path of a JSON OCI spec (as ctr oci spec prints) the handler's sandbox and container specs start from instead of containerd's default; read and checked at start"`
}

// defaultRuntimes is the handler table when the file declares none: runc, whose binary is
// runc_binary's.
func defaultRuntimes() map[string]Runtime {
	return map[string]Runtime{"runc": {RuntimeType: RuncRuntimeType}}
}

// RuntimeNames are the configured handlers, the default (default_runtime_name) first, then the
// others by name.
func (c *Config) RuntimeNames() []string {
	names := make([]string, 0, len(c.Runtimes))
	for n := range c.Runtimes {
		if n != c.DefaultRuntimeName {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if _, ok := c.Runtimes[c.DefaultRuntimeName]; ok {
		names = append([]string{c.DefaultRuntimeName}, names...)
	}
	return names
}

// Type is the handler's runtime_type, io.containerd.runc.v2 when empty.
func (r Runtime) Type() string {
	if r.RuntimeType == "" {
		return RuncRuntimeType
	}
	return r.RuntimeType
}

// LoadBaseSpec reads base_runtime_spec: nil when unset.
func (r Runtime) LoadBaseSpec() (*runtimespec.Spec, error) {
	if r.BaseRuntimeSpec == "" {
		return nil, nil
	}
	data, err := os.ReadFile(r.BaseRuntimeSpec)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s runtimespec.Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s is not an OCI runtime spec: %w", r.BaseRuntimeSpec, err)
	}
	// The spec options fill in a spec made by containerd's generator, which always has these.
	switch {
	case s.Process == nil:
		return nil, fmt.Errorf("%s has no process", r.BaseRuntimeSpec)
	case s.Root == nil:
		return nil, fmt.Errorf("%s has no root", r.BaseRuntimeSpec)
	case s.Linux == nil:
		return nil, fmt.Errorf("%s has no linux section", r.BaseRuntimeSpec)
	}
	return &s, nil
}

// A handler's name is what a RuntimeClass's handler field may hold: a DNS label.
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validateRuntimes checks the handler table and default_runtime_name; each error names
// runtimes.<name>.<key>.
func (c *Config) validateRuntimes() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Runtimes) == 0 {
		bad("runtimes", "must configure at least one handler")
	}
	if _, ok := c.Runtimes[c.DefaultRuntimeName]; !ok && len(c.Runtimes) > 0 {
		bad("default_runtime_name", "%q is not a configured handler (runtimes: %v)", c.DefaultRuntimeName, c.RuntimeNames())
	}
	driver, driverErr := c.CgroupDriverOf()
	for _, name := range c.RuntimeNames() {
		r := c.Runtimes[name]
		key := func(k string) string { return "runtimes." + name + "." + k }
		if len(name) > 63 || !handlerName.MatchString(name) {
			bad("runtimes."+name, "the name must be a DNS label (lower-case letters, digits, '-'; at most 63), as a RuntimeClass handler")
		}
		runcShim := r.Type() == RuncRuntimeType
		if !runcShim && (r.BinaryName != "" || r.SystemdCgroup != nil) {
			bad(key("runtime_type"), "binary_name and systemd_cgroup are options of %s, not of %s", RuncRuntimeType, r.Type())
		}
		if r.BinaryName != "" {
			if filepath.IsAbs(r.BinaryName) {
				if st, err := os.Stat(r.BinaryName); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", key("binary_name"), err))
				} else if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
					bad(key("binary_name"), "%s is not an executable file", r.BinaryName)
				}
			} else if _, err := exec.LookPath(r.BinaryName); err != nil {
				bad(key("binary_name"), "%q is not on PATH: %v", r.BinaryName, err)
			}
		}
		// The pods' cgroup paths follow cgroup_driver: a runtime driving cgroups the other way
		// could start none of them.
		if r.SystemdCgroup != nil && driverErr == nil && *r.SystemdCgroup != driver.IsSystemd() {
			bad(key("systemd_cgroup"), "%t, but cgroup_driver is %s: the pods' cgroup paths follow cgroup_driver, so they must agree (leave systemd_cgroup out to follow it)", *r.SystemdCgroup, driver)
		}
		for _, p := range r.PodAnnotations {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				bad(key("pod_annotations"), "%q is not a pattern (path.Match syntax)", p)
			}
		}
		if r.BaseRuntimeSpec != "" {
			if !filepath.IsAbs(r.BaseRuntimeSpec) {
				bad(key("base_runtime_spec"), "must be an absolute path, got %q", r.BaseRuntimeSpec)
			} else if _, err := r.LoadBaseSpec(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key("base_runtime_spec"), err))
			}
		}
	}
	return errors.Join(errs...)
}

// writeRuntimesDefault writes the handler table with its default and a comment per key, after
// every top-level key (a TOML table ends only at the next table).
func writeRuntimesDefault(buf *bytes.Buffer, d Config) error {
	buf.WriteString("\n# The runtime handlers pods name (RuntimeClass handler), one [runtimes.<name>] table each;\n")
	buf.WriteString("# a file's tables are added to this one. Keys of a table:\n")
	t := reflect.TypeOf(Runtime{})
	for i := 0; i < t.NumField(); i++ {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		fmt.Fprintf(buf, "#   %s: %s\n", key, t.Field(i).Tag.Get("doc"))
	}
	for _, name := range d.RuntimeNames() {
		val, err := toml.Marshal(map[string]any{"runtimes": map[string]Runtime{name: d.Runtimes[name]}})
		if err != nil {
			return fmt.Errorf("runtimes.%s: %w", name, err)
		}
		buf.Write(val)
	}
	return nil
}
