// Package config holds cri-shim's configuration: its keys, their defaults, the TOML file format and
// validation. Every error names the key it is about.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/pelletier/go-toml/v2"
	"github.com/sirupsen/logrus"
)

// DefaultPath is where the daemon looks for its config file when --config is not given. A missing
// file at the default path is not an error; a missing file given explicitly is.
const DefaultPath = "/etc/cri-shim/config.toml"

// DropInDirName is the drop-in dir next to the main file when config_dir is not set.
const DropInDirName = "config.d"

// The values of containerd_mode.
const (
	// ModeExternal uses the containerd at containerd_address and never starts one.
	ModeExternal = "external"
	// ModeManaged runs a containerd child under cri-shim's own dirs.
	ModeManaged = "managed"
)

// Config is the daemon's configuration. The `toml` tag is the key in the file, `flag` the
// command-line flag that overrides it, and `doc` the one-line comment `config default` prints.
type Config struct {
	ConfigDir                string   `toml:"config_dir" json:"config_dir" flag:"config-dir" doc:"drop-in dir: its *.toml files apply over the main file in lexical order, flags over all; set in the main file or by flag only; empty: config.d next to the main file (/etc/cri-shim/config.d by default)"`
	Socket                   string   `toml:"socket" json:"socket" flag:"socket" doc:"unix socket the CRI gRPC services listen on (created mode 0660)"`
	ContainerdMode           string   `toml:"containerd_mode" json:"containerd_mode" flag:"containerd-mode" doc:"external: use the containerd at containerd_address, waiting for it while it does not answer, never starting one; managed: run a containerd child with its root, state and socket under root_dir and state_dir. Neither falls back to the other, and each refuses to start while the other still holds pods in containerd_namespace"`
	ContainerdAddress        string   `toml:"containerd_address" json:"containerd_address" flag:"containerd-address" doc:"socket of the containerd containerd_mode external uses; managed mode checks it holds no pods of containerd_namespace, and refuses an address of its own (it means external)"`
	ContainerdNamespace      string   `toml:"containerd_namespace" json:"containerd_namespace" flag:"containerd-namespace" doc:"containerd namespace holding cri-shim's pods, containers and images (kept apart from containerd's own CRI plugin, which uses k8s.io)"`
	ManagedContainerd        bool     `toml:"managed_containerd" json:"managed_containerd" flag:"managed-containerd" doc:"deprecated: true is containerd_mode = \"managed\""`
	ContainerdBinaryDir      string   `toml:"containerd_binary_dir" json:"containerd_binary_dir" flag:"containerd-binary-dir" doc:"where the managed containerd and containerd-shim-runc-v2 binaries are; empty: PATH, then /var/cache/cri-shim/bin"`
	RuncBinary               string   `toml:"runc_binary" json:"runc_binary" flag:"runc-binary" doc:"the runc the default runtime handler (runc) runs, passed to containerd-shim-runc-v2 as BinaryName; empty: /var/cache/cri-shim/bin/runc (built by hack/setup.sh) when it is there, else runc on containerd's PATH"`
	RootDir                  string   `toml:"root_dir" json:"root_dir" flag:"root" doc:"persistent state (pod files, managed containerd's root)"`
	StateDir                 string   `toml:"state_dir" json:"state_dir" flag:"state" doc:"runtime state that does not survive a reboot (network namespaces, managed containerd's state and socket)"`
	SandboxImage             string   `toml:"sandbox_image" json:"sandbox_image" flag:"sandbox-image" doc:"the pause image every pod sandbox runs"`
	CNIBinDirs               []string `toml:"cni_bin_dirs" json:"cni_bin_dirs" flag:"cni-bin-dir" doc:"directories searched for CNI plugin binaries"`
	CNIConfDir               string   `toml:"cni_conf_dir" json:"cni_conf_dir" flag:"cni-conf-dir" doc:"directory holding the CNI network configuration"`
	RegistryConfigPath       string   `toml:"registry_config_path" json:"registry_config_path" flag:"registry-config-path" doc:"registry hosts dir in containerd's certs.d/hosts.toml format (mirrors, TLS, plain-http hosts); empty: none"`
	MaxConcurrentPulls       int      `toml:"max_concurrent_pulls" json:"max_concurrent_pulls" flag:"max-concurrent-pulls" doc:"image pulls running at once (0 = unlimited, 1 = serialized)"`
	MaxConcurrentDownloads   int      `toml:"max_concurrent_downloads" json:"max_concurrent_downloads" flag:"max-concurrent-downloads" doc:"layers (blobs) one image pull downloads at once (0 = unlimited)"`
	ImagePullProgressTimeout Duration `toml:"image_pull_progress_timeout" json:"image_pull_progress_timeout" flag:"image-pull-progress-timeout" doc:"cancel a pull that transfers nothing for this long"`
	ExecIODrainTimeout       Duration `toml:"exec_io_drain_timeout" json:"exec_io_drain_timeout" flag:"exec-io-drain-timeout" doc:"how long the output of an exec'd process (ExecSync, exec probes, streaming exec) may take to arrive after the process exited; past it, the output still held open by a child the command left in the background is given up"`
	StreamServerAddress      string   `toml:"stream_server_address" json:"stream_server_address" flag:"stream-address" doc:"host:port of the exec/attach/port-forward streaming server (port 0: a free one)"`
	MetricsAddress           string   `toml:"metrics_address" json:"metrics_address" flag:"metrics-address" doc:"host:port serving Prometheus metrics on /metrics; empty: off"`
	EnablePprof              bool     `toml:"enable_pprof" json:"enable_pprof" flag:"enable-pprof" doc:"also serve /debug/pprof on the metrics address"`
	GCMinAge                 Duration `toml:"gc_min_age" json:"gc_min_age" flag:"gc-min-age" doc:"container GC: a dead container younger than this is never removed; containers whose sandbox is gone (orphans) are removed once this old, always"`
	GCMaxPerPodContainer     int      `toml:"gc_max_per_pod_container" json:"gc_max_per_pod_container" flag:"gc-max-per-pod-container" doc:"container GC: dead containers kept per (pod, container name) of a live sandbox; -1: no limit, so a kubelet's dead containers are left to the kubelet (set a limit only for pods no kubelet collects)"`
	GCMaxContainers          int      `toml:"gc_max_containers" json:"gc_max_containers" flag:"gc-max-containers" doc:"container GC: dead containers of live sandboxes kept on the node in all (oldest removed first, at least one per pod container name); -1: no limit"`
	GCInterval               Duration `toml:"gc_interval" json:"gc_interval" flag:"gc-interval" doc:"how often the container GC runs (gc_min_age, gc_max_per_pod_container, gc_max_containers; cri-shim gc --dry-run prints what it would remove)"`
	StaticPodsDir            string   `toml:"static_pods_dir" json:"static_pods_dir" flag:"static-pods-dir" doc:"directory of Pod manifests (YAML/JSON) run as standalone pods without a kubelet (created 0700 when missing; must not be writable by group or others); empty: off"`
	StaticPodsLogDir         string   `toml:"static_pods_log_dir" json:"static_pods_log_dir" flag:"static-pods-log-dir" doc:"where the standalone pods' container logs go, one <namespace>_<name>_<uid> dir per pod as the kubelet's /var/log/pods"`
	StaticPodsGCMaxPerPod    int      `toml:"static_pods_gc_max_per_pod_container" json:"static_pods_gc_max_per_pod_container" flag:"static-pods-gc-max-per-pod-container" doc:"container GC of the standalone pods (cri-shim owns them): dead containers kept per (pod, container name), the kubelet's default 1; -1: no limit (gc_min_age and gc_max_containers apply too)"`
	StaticPodsProtected      bool     `toml:"static_pods_protected" json:"static_pods_protected" flag:"static-pods-protected" doc:"refuse (FailedPrecondition) the CRI calls that stop, remove or update the resources of the standalone pods' sandboxes and containers, so a kubelet on the same socket (its orphan cleanup and container GC) or crictl does not delete them; listing, status, exec and logs stay open; delete them with cri-shim pods delete"`
	GoGCPercent              int      `toml:"go_gc_percent" json:"go_gc_percent" flag:"go-gc-percent" doc:"the Go GC's target heap growth in percent between collections (Go's GOGC, which wins when set): lower keeps RSS closer to the live heap for a little more GC CPU; 75 by default (Go's own is 100)"`
	GoMemoryLimitMiB         int      `toml:"go_memory_limit_mib" json:"go_memory_limit_mib" flag:"go-memory-limit-mib" doc:"soft limit of the daemon's Go heap and runtime in MiB (Go's GOMEMLIMIT, which wins when set): the Go GC collects harder near it instead of letting the heap double; never a hard cap; 0: off"`
	CheckpointMaxSizeMiB     int      `toml:"checkpoint_max_size_mib" json:"checkpoint_max_size_mib" flag:"checkpoint-max-size-mib" doc:"the most a restore copies from a checkpoint (archive or CheckpointPod directory) into the container's dir under root_dir, in MiB; 0: only the checkpoint's own size bounds it (sparse entries and files are refused always)"`
	LogLevel                 string   `toml:"log_level" json:"log_level" flag:"log-level" doc:"trace, debug, info, warn or error"`
	LogFormat                string   `toml:"log_format" json:"log_format" flag:"log-format" doc:"text or json"`

	// NRI (Node Resource Interface) plugins.
	EnableNRI                    bool     `toml:"enable_nri" json:"enable_nri" flag:"enable-nri" doc:"serve NRI: plugins receive the pod and container lifecycle events, may adjust containers at creation and update their resources"`
	NRISocket                    string   `toml:"nri_socket" json:"nri_socket" flag:"nri-socket" doc:"unix socket NRI plugins connect to (plugins take it from NRI_PLUGIN_SOCKET or their socket flag); empty: <state_dir>/nri/nri.sock, apart from /var/run/nri/nri.sock, which a system containerd's NRI owns"`
	NRIPluginDir                 string   `toml:"nri_plugin_dir" json:"nri_plugin_dir" flag:"nri-plugin-dir" doc:"pre-installed NRI plugins cri-shim launches at start, executables named <index>-<name> (containerd uses /opt/nri/plugins); empty: none"`
	NRIPluginConfigDir           string   `toml:"nri_plugin_config_dir" json:"nri_plugin_config_dir" flag:"nri-plugin-config-dir" doc:"configuration files of the pre-installed plugins, <index>-<name>.conf or <name>.conf (containerd uses /etc/nri/conf.d); empty: none"`
	NRIPluginRegistrationTimeout Duration `toml:"nri_plugin_registration_timeout" json:"nri_plugin_registration_timeout" flag:"nri-plugin-registration-timeout" doc:"how long a connecting NRI plugin may take to register"`
	NRIPluginRequestTimeout      Duration `toml:"nri_plugin_request_timeout" json:"nri_plugin_request_timeout" flag:"nri-plugin-request-timeout" doc:"how long an NRI plugin may take to handle one event; a plugin that takes longer is disconnected and the call goes on without it"`

	// CDI (Container Device Interface) devices.
	EnableCDI   bool     `toml:"enable_cdi" json:"enable_cdi" flag:"enable-cdi" doc:"inject the CDI devices containers ask for (CRI cdi_devices and cdi.k8s.io/ annotations) and NRI plugins add: device nodes, env, mounts and hooks from the spec files of cdi_spec_dirs; an unknown device fails CreateContainer (InvalidArgument); off: the requests are ignored, as containerd does"`
	CDISpecDirs []string `toml:"cdi_spec_dirs" json:"cdi_spec_dirs" flag:"cdi-spec-dir" doc:"directories of CDI spec files (*.yaml, *.json), watched for changes; a later one wins on a device both define"`

	// The cgroup driver (cgroup_driver.go).
	CgroupDriver string `toml:"cgroup_driver" json:"cgroup_driver" flag:"cgroup-driver" doc:"how pods' cgroups are named and made: systemd (the kubelet's *.slice parents; runc makes a scope per container through systemd) or cgroupfs (cgroup paths); must match the kubelet's cgroupDriver, which RuntimeConfig reports to it; empty: systemd when systemd is PID 1 (/run/systemd/system exists), else cgroupfs"`

	// Pods without a pause process (kuberuntime/sandbox_pauseless.go).
	PauseLessPods bool `toml:"pause_less_pods" json:"pause_less_pods" flag:"pause-less-pods" doc:"run the pods whose containers share no PID namespace (the kubelet's default) on the runc handlers without a pause process: their network, IPC and UTS namespaces (and user namespace) are pinned as files, their containers join them; pods sharing a PID namespace keep the pause container. Applies to pods created from then on; existing pods keep how they were made"`

	// The runtime handlers (runtimes.go). Runtimes is a table, written after every key and
	// without a flag.
	DefaultRuntimeName string             `toml:"default_runtime_name" json:"default_runtime_name" flag:"default-runtime-name" doc:"the runtime handler of pods that name none (the empty RuntimeClass handler): one of the [runtimes.<name>] tables"`
	Runtimes           map[string]Runtime `toml:"runtimes" json:"runtimes"`

	// The image pull path (imageservice/transfer.go).
	ImagePullViaTransfer bool `toml:"image_pull_via_transfer" json:"image_pull_via_transfer" flag:"image-pull-via-transfer" doc:"pull images through containerd's Transfer service: containerd fetches straight into its content store (no blob streamed through cri-shim), and its transfer config applies (max_concurrent_downloads across all pulls instead of max_concurrent_downloads here, unpack_config, image verifier plugins); pulls with credentials take the client path always, whose transport keeps them from the hosts a registry redirects to, and so does every pull when containerd serves no Transfer service; false: the containerd client inside cri-shim for all pulls (containerd's CRI calls it use_local_image_pull)"`
}

// Duration is a time.Duration written as a Go duration string ("5m", "90s") in TOML.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (such as \"5m\" or \"90s\"): %q", b)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// Default returns the configuration used for every key the file and flags leave unset.
func Default() Config {
	return Config{
		Socket:                   "/run/cri-shim/cri-shim.sock",
		ContainerdMode:           ModeManaged,
		ContainerdAddress:        "/run/containerd/containerd.sock",
		ContainerdNamespace:      "cri-shim",
		RootDir:                  "/var/lib/cri-shim",
		StateDir:                 "/run/cri-shim",
		SandboxImage:             "registry.k8s.io/pause:3.10",
		CNIBinDirs:               []string{"/opt/cni/bin", "/usr/lib/cni"},
		CNIConfDir:               "/etc/cni/net.d",
		MaxConcurrentPulls:       3,
		MaxConcurrentDownloads:   3,
		ImagePullProgressTimeout: Duration(5 * time.Minute),
		ExecIODrainTimeout:       Duration(2 * time.Second),
		StreamServerAddress:      "127.0.0.1:0",
		GCMinAge:                 Duration(time.Minute),
		GCMaxPerPodContainer:     -1,
		GCMaxContainers:          -1,
		GCInterval:               Duration(5 * time.Minute),
		StaticPodsDir:            "/etc/cri-shim/manifests",
		StaticPodsLogDir:         "/var/log/pods",
		StaticPodsGCMaxPerPod:    1,
		StaticPodsProtected:      true,
		GoGCPercent:              75,
		GoMemoryLimitMiB:         0,
		LogLevel:                 "info",
		PauseLessPods:            true,
		LogFormat:                "text",

		EnableNRI:                    true,
		NRIPluginRegistrationTimeout: Duration(5 * time.Second),
		NRIPluginRequestTimeout:      Duration(2 * time.Second),

		EnableCDI:   true,
		CDISpecDirs: []string{"/etc/cdi", "/var/run/cdi"},

		DefaultRuntimeName: "runc",
		Runtimes:           defaultRuntimes(),

		ImagePullViaTransfer: true,
	}
}

// ManagedContainerdAddress is the socket of a containerd started by cri-shim.
func (c *Config) ManagedContainerdAddress() string {
	return filepath.Join(c.StateDir, "containerd", "containerd.sock")
}

// NRISocketPath is the socket NRI plugins connect to: nri_socket, or <state_dir>/nri/nri.sock.
func (c *Config) NRISocketPath() string {
	if c.NRISocket != "" {
		return c.NRISocket
	}
	return filepath.Join(c.StateDir, "nri", "nri.sock")
}

// Load reads the TOML file at path over the defaults, then its drop-ins (see LoadFiles). An empty
// path means DefaultPath, which may be absent.
func Load(path string) (Config, error) {
	cfg, _, err := LoadFiles(path, "")
	return cfg, err
}

// LoadFiles reads the main file at path over the defaults (an empty path means DefaultPath, which
// may be absent), then every *.toml of the drop-in dir in lexical order, each over the ones before.
// The drop-in dir is configDir when not empty (the --config-dir flag), else the main file's
// config_dir, else config.d next to the main file; it may be absent unless named explicitly. The
// result's ConfigDir is the dir used. LoadFiles returns the files read, in the order applied; each
// error names its file.
func LoadFiles(path, configDir string) (Config, []string, error) {
	cfg := Default()
	var files []string
	explicit := path != ""
	if !explicit {
		path = DefaultPath
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := Decode(data, &cfg); err != nil {
			return cfg, nil, fmt.Errorf("config file %s: %w", path, err)
		}
		files = append(files, path)
	case explicit || !errors.Is(err, os.ErrNotExist):
		return cfg, nil, fmt.Errorf("config file: %w", err)
	}

	dirExplicit := configDir != "" || cfg.ConfigDir != ""
	switch {
	case configDir != "":
		cfg.ConfigDir = configDir
	case cfg.ConfigDir == "":
		dir, err := filepath.Abs(filepath.Dir(path))
		if err != nil {
			return cfg, nil, fmt.Errorf("config_dir: %w", err)
		}
		cfg.ConfigDir = filepath.Join(dir, DropInDirName)
	}
	dropIns, err := dropInFiles(cfg.ConfigDir, dirExplicit)
	if err != nil {
		return cfg, nil, fmt.Errorf("config_dir: %w", err)
	}
	for _, f := range dropIns {
		data, err := os.ReadFile(f)
		if err != nil {
			return cfg, nil, fmt.Errorf("config drop-in: %w", err)
		}
		dir := cfg.ConfigDir
		if err := Decode(data, &cfg); err != nil {
			return cfg, nil, fmt.Errorf("config drop-in %s: %w", f, err)
		}
		if cfg.ConfigDir != dir {
			return cfg, nil, fmt.Errorf("config drop-in %s: key config_dir: only the main file or --config-dir may set it", f)
		}
		files = append(files, f)
	}
	return cfg, files, nil
}

// dropInFiles lists dir's *.toml files in lexical order, leaving out hidden ones (editors' temporary
// files). An absent dir has none, unless it was named explicitly.
func dropInFiles(dir string, explicit bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var files []string
	for _, e := range entries { // os.ReadDir sorts by name
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".toml") || e.IsDir() {
			continue
		}
		files = append(files, filepath.Join(dir, name))
	}
	return files, nil
}

// Decode parses TOML into cfg, keeping cfg's values for absent keys. Unknown keys and values of the
// wrong type are errors naming the key.
func Decode(data []byte, cfg *Config) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(cfg)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		keys := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		if k := de.Key(); len(k) > 0 {
			return fmt.Errorf("key %s (line %d, column %d): %s", strings.Join(k, "."), row, col, de.Error())
		}
		return fmt.Errorf("line %d, column %d: %s", row, col, de.Error())
	}
	return err
}

// Validate checks every key and returns all the problems found, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	absPath := func(key, p string, mayBeEmpty bool) {
		switch {
		case p == "" && mayBeEmpty:
		case p == "":
			bad(key, "must not be empty")
		case !filepath.IsAbs(p):
			bad(key, "must be an absolute path, got %q", p)
		case filepath.Clean(p) != p:
			bad(key, "must be a clean path (no '..', '//' or trailing '/'), got %q", p)
		}
	}
	absPath("config_dir", c.ConfigDir, true)
	switch c.ContainerdMode {
	case ModeExternal:
		if c.ManagedContainerd {
			bad("containerd_mode", "%q contradicts managed_containerd = true (deprecated): drop managed_containerd", c.ContainerdMode)
		}
	case ModeManaged:
		// A containerd named without a mode meant that one (it used to be taken when it answered):
		// a managed containerd in its place would be a silent change.
		if c.ContainerdAddress != Default().ContainerdAddress {
			bad("containerd_mode", "%q, but containerd_address names %s: set containerd_mode = %q to use that containerd", c.ContainerdMode, c.ContainerdAddress, ModeExternal)
		}
	default:
		bad("containerd_mode", "%q is not %q or %q", c.ContainerdMode, ModeExternal, ModeManaged)
	}
	absPath("socket", c.Socket, false)
	// A unix socket path is limited to 107 bytes by the kernel.
	if len(c.Socket) > 107 {
		bad("socket", "path longer than 107 bytes: %q", c.Socket)
	}
	if len(c.ManagedContainerdAddress()) > 107 {
		bad("state_dir", "too long: the managed containerd socket %q would exceed 107 bytes", c.ManagedContainerdAddress())
	}
	absPath("containerd_address", c.ContainerdAddress, false)
	absPath("containerd_binary_dir", c.ContainerdBinaryDir, true)
	if c.ContainerdBinaryDir != "" {
		mustBeDir(&errs, "containerd_binary_dir", c.ContainerdBinaryDir)
	}
	absPath("runc_binary", c.RuncBinary, true)
	if c.RuncBinary != "" {
		if st, err := os.Stat(c.RuncBinary); err != nil {
			errs = append(errs, fmt.Errorf("runc_binary: %w", err))
		} else if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			bad("runc_binary", "%s is not an executable file", c.RuncBinary)
		}
	}
	absPath("root_dir", c.RootDir, false)
	absPath("state_dir", c.StateDir, false)
	if c.RootDir != "" && c.RootDir == c.StateDir {
		bad("state_dir", "must differ from root_dir")
	}
	if c.ContainerdNamespace == "" {
		bad("containerd_namespace", "must not be empty")
	} else if !validNamespace(c.ContainerdNamespace) {
		bad("containerd_namespace", "%q is not a valid containerd namespace (lower-case letters, digits, '.', '-', '_')", c.ContainerdNamespace)
	}
	if c.SandboxImage == "" {
		bad("sandbox_image", "must not be empty")
	} else if _, err := reference.ParseNormalizedNamed(c.SandboxImage); err != nil {
		bad("sandbox_image", "%q is not an image reference: %v", c.SandboxImage, err)
	}
	if len(c.CNIBinDirs) == 0 {
		bad("cni_bin_dirs", "must list at least one directory")
	}
	for _, d := range c.CNIBinDirs {
		absPath("cni_bin_dirs", d, false)
	}
	absPath("cni_conf_dir", c.CNIConfDir, false)
	absPath("registry_config_path", c.RegistryConfigPath, true)
	if c.RegistryConfigPath != "" {
		mustBeDir(&errs, "registry_config_path", c.RegistryConfigPath)
	}
	if c.GoGCPercent < 10 || c.GoGCPercent > 1000 {
		bad("go_gc_percent", "must be between 10 and 1000, got %d", c.GoGCPercent)
	}
	if c.GoMemoryLimitMiB < 0 {
		bad("go_memory_limit_mib", "must be 0 (off) or more, got %d", c.GoMemoryLimitMiB)
	}
	if c.CheckpointMaxSizeMiB < 0 {
		bad("checkpoint_max_size_mib", "must be 0 (no maximum but the checkpoint's size) or more, got %d", c.CheckpointMaxSizeMiB)
	}
	if c.MaxConcurrentPulls < 0 {
		bad("max_concurrent_pulls", "must be 0 (unlimited) or more, got %d", c.MaxConcurrentPulls)
	}
	if c.MaxConcurrentDownloads < 0 {
		bad("max_concurrent_downloads", "must be 0 (unlimited) or more, got %d", c.MaxConcurrentDownloads)
	}
	if c.ImagePullProgressTimeout <= 0 {
		bad("image_pull_progress_timeout", "must be positive, got %s", c.ImagePullProgressTimeout)
	}
	if c.ExecIODrainTimeout <= 0 {
		bad("exec_io_drain_timeout", "must be positive, got %s", c.ExecIODrainTimeout)
	}
	if _, _, err := net.SplitHostPort(c.StreamServerAddress); err != nil {
		bad("stream_server_address", "%q is not host:port: %v", c.StreamServerAddress, err)
	}
	if c.EnablePprof && c.MetricsAddress == "" {
		bad("enable_pprof", "needs metrics_address, the listener it is served on")
	}
	if c.MetricsAddress != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddress); err != nil {
			bad("metrics_address", "%q is not host:port: %v", c.MetricsAddress, err)
		}
	}
	if c.GCMinAge < 0 {
		bad("gc_min_age", "must not be negative, got %s", c.GCMinAge)
	}
	if c.GCMaxPerPodContainer < -1 {
		bad("gc_max_per_pod_container", "must be -1 (no limit) or more, got %d", c.GCMaxPerPodContainer)
	}
	if c.GCMaxContainers < -1 {
		bad("gc_max_containers", "must be -1 (no limit) or more, got %d", c.GCMaxContainers)
	}
	if c.GCInterval <= 0 {
		bad("gc_interval", "must be positive, got %s", c.GCInterval)
	}
	absPath("static_pods_dir", c.StaticPodsDir, true)
	absPath("static_pods_log_dir", c.StaticPodsLogDir, false)
	if c.StaticPodsGCMaxPerPod < -1 {
		bad("static_pods_gc_max_per_pod_container", "must be -1 (no limit) or more, got %d", c.StaticPodsGCMaxPerPod)
	}
	absPath("nri_socket", c.NRISocket, true)
	if c.EnableNRI && len(c.NRISocketPath()) > 107 {
		bad("nri_socket", "path longer than 107 bytes: %q", c.NRISocketPath())
	}
	absPath("nri_plugin_dir", c.NRIPluginDir, true)
	absPath("nri_plugin_config_dir", c.NRIPluginConfigDir, true)
	if c.NRIPluginRegistrationTimeout <= 0 {
		bad("nri_plugin_registration_timeout", "must be positive, got %s", c.NRIPluginRegistrationTimeout)
	}
	if c.NRIPluginRequestTimeout <= 0 {
		bad("nri_plugin_request_timeout", "must be positive, got %s", c.NRIPluginRequestTimeout)
	}
	if c.EnableCDI && len(c.CDISpecDirs) == 0 {
		bad("cdi_spec_dirs", "must list at least one directory while enable_cdi is on")
	}
	for _, d := range c.CDISpecDirs {
		absPath("cdi_spec_dirs", d, false)
	}
	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		bad("log_level", "%q is not one of trace, debug, info, warn, error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "%q is not text or json", c.LogFormat)
	}
	if err := c.validateCgroupDriver(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateRuntimes(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Warnings lists the deprecated keys c uses, each with its replacement.
func (c *Config) Warnings() []string {
	var w []string
	if c.ManagedContainerd {
		w = append(w, `managed_containerd is deprecated: use containerd_mode = "managed"`)
	}
	return w
}

func mustBeDir(errs *[]error, key, p string) {
	st, err := os.Stat(p)
	switch {
	case err != nil:
		*errs = append(*errs, fmt.Errorf("%s: %w", key, err))
	case !st.IsDir():
		*errs = append(*errs, fmt.Errorf("%s: %s is not a directory", key, p))
	}
}

func validNamespace(ns string) bool {
	for _, r := range ns {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return len(ns) <= 76
}

// Field describes one key for `config default` and the command-line flags.
type Field struct {
	Key, Flag, Doc string
	Value          reflect.Value
}

// Fields lists the keys of c in file order, with addressable values: the top-level keys, each
// with its flag (tables such as runtimes have none and are not listed).
func (c *Config) Fields() []Field {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	out := make([]Field, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("flag") == "" {
			continue
		}
		out = append(out, Field{Key: f.Tag.Get("toml"), Flag: f.Tag.Get("flag"), Doc: f.Tag.Get("doc"), Value: v.Field(i)})
	}
	return out
}

// WriteDefault writes every key with its default value and a one-line comment, as a valid TOML file.
func WriteDefault(buf *bytes.Buffer) error {
	d := Default()
	buf.WriteString("# cri-shim configuration: every key with its default.\n")
	for _, f := range d.Fields() {
		val, err := toml.Marshal(map[string]any{f.Key: f.Value.Interface()})
		if err != nil {
			return fmt.Errorf("%s: %w", f.Key, err)
		}
		fmt.Fprintf(buf, "\n# %s\n%s", f.Doc, val)
	}
	return writeRuntimesDefault(buf, d)
}
