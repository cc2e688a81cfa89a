package lsm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// DefaultProfileName is the AppArmor profile the runtime gives containers that ask for none or for
// RuntimeDefault. It is containerd's profile under cri-shim's own name: the kernel's profile list
// then tells which runtime loaded it, and a containerd CRI on the same host keeps its own
// (cri-containerd.apparmor.d), whose text depends on that daemon's confinement, not ours.
const DefaultProfileName = "cri-shim.apparmor.d"

// parserTimeout bounds one run of apparmor_parser (compiling the default profile takes about a
// second; a parser that hangs must not hold container creation).
const parserTimeout = 60 * time.Second

// AppArmorHost is what the runtime reads from and does to the host's AppArmor.
type AppArmorHost struct {
	// Supported tells whether containers can be confined by AppArmor here and, when not, why.
	Supported func() (bool, string)
	// Profiles is the kernel's list of loaded profiles (/sys/kernel/security/apparmor/profiles:
	// one "name (mode)" a line).
	Profiles func() ([]byte, error)
	// Generate is the text of the default profile under a name.
	Generate func(name string) (string, error)
	// Load loads a profile's text into the kernel, replacing one of the same name; its error
	// carries the loader's own output.
	Load func(ctx context.Context, profile string) error
}

// AppArmor is the host's AppArmor; it loads the default profile when a container first needs it.
type AppArmor struct {
	host AppArmorHost
	// mu serialises loading the default profile, so that concurrent creations load it once.
	mu sync.Mutex
}

// NewAppArmor is the AppArmor of host; its unset fields are this host's.
func NewAppArmor(host AppArmorHost) *AppArmor {
	if host.Supported == nil {
		host.Supported = hostAppArmorSupported
	}
	if host.Profiles == nil {
		host.Profiles = func() ([]byte, error) { return os.ReadFile(profilesPath) }
	}
	if host.Generate == nil {
		// containerd's template lives in apparmorprofile (it pulls in containerd's packages).
		host.Generate = func(string) (string, error) {
			return "", errors.New("no default AppArmor profile generator (lsm/apparmorprofile gives one)")
		}
	}
	if host.Load == nil {
		host.Load = parserLoad
	}
	return &AppArmor{host: host}
}

// AppArmorSupported tells whether containers can be confined by AppArmor on this host and, when
// not, why.
func AppArmorSupported() (bool, string) { return hostAppArmorSupported() }

// Enabled tells whether containers can be confined by AppArmor on this host.
func (a *AppArmor) Enabled() bool {
	ok, _ := a.host.Supported()
	return ok
}

// State is what a verbose Status reports: whether AppArmor confines containers, with which
// default profile, or why not.
func (a *AppArmor) State() AppArmorState {
	ok, why := a.host.Supported()
	if !ok {
		return AppArmorState{Reason: "AppArmor not enabled on this host (" + why + "): containers get no profile"}
	}
	return AppArmorState{Enabled: true, DefaultProfile: DefaultProfileName}
}

// AppArmorState is the AppArmor part of a verbose Status.
type AppArmorState struct {
	Enabled        bool   `json:"enabled"`
	DefaultProfile string `json:"defaultProfile,omitempty"`
	Reason         string `json:"reason,omitempty"`
}

// ProfileLoaded tells whether the kernel has a profile of that name loaded.
func (a *AppArmor) ProfileLoaded(name string) (bool, error) {
	list, err := a.host.Profiles()
	if err != nil {
		return false, fmt.Errorf("read the loaded AppArmor profiles: %w", err)
	}
	return profileListed(list, name), nil
}

// EnsureDefault loads the default profile unless the kernel has it, and returns its name. A
// failure to load is FailedPrecondition with the loader's output: the host's AppArmor setup, not
// the request, is at fault.
func (a *AppArmor) EnsureDefault(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	loaded, err := a.ProfileLoaded(DefaultProfileName)
	if err != nil {
		return "", fmt.Errorf("AppArmor default profile %s: %w: %w", DefaultProfileName, err, errdefs.ErrFailedPrecondition)
	}
	if loaded {
		return DefaultProfileName, nil
	}
	text, err := a.host.Generate(DefaultProfileName)
	if err != nil {
		return "", fmt.Errorf("generate AppArmor default profile %s: %w", DefaultProfileName, err)
	}
	if err := a.host.Load(ctx, text); err != nil {
		return "", fmt.Errorf("load AppArmor default profile %s: %w: %w", DefaultProfileName, err, errdefs.ErrFailedPrecondition)
	}
	return DefaultProfileName, nil
}

// profileListed tells whether the kernel's profile list has a profile of that name; a line is
// "name (mode)", and a name has no spaces.
func profileListed(list []byte, name string) bool {
	s := bufio.NewScanner(bytes.NewReader(list))
	for s.Scan() {
		if n, _, _ := strings.Cut(s.Text(), " "); n == name {
			return true
		}
	}
	return false
}

const (
	profilesPath      = "/sys/kernel/security/apparmor/profiles"
	securityfsDir     = "/sys/kernel/security/apparmor"
	moduleEnabledPath = "/sys/module/apparmor/parameters/enabled"
)

// hostAppArmorSupported is containerd's test (pkg/apparmor.HostSupports, after runc's): the
// kernel has AppArmor enabled, securityfs shows it, apparmor_parser is installed (to load the
// default profile) and the runtime is not itself in a container.
func hostAppArmorSupported() (bool, string) {
	b, err := os.ReadFile(moduleEnabledPath)
	if err != nil || !strings.HasPrefix(string(b), "Y") {
		return false, "the kernel's AppArmor module is not enabled: " + moduleEnabledPath + " is not Y"
	}
	if _, err := os.Stat(securityfsDir); err != nil {
		return false, securityfsDir + " is missing (securityfs not mounted?)"
	}
	if _, err := parserPath(); err != nil {
		return false, "apparmor_parser is not installed (the apparmor package), so no profile can be loaded"
	}
	if os.Getenv("container") != "" {
		return false, "the runtime runs in a container ($container is set)"
	}
	return true, ""
}

// parserPath finds apparmor_parser: on PATH, else in /sbin or /usr/sbin (which a daemon's PATH may
// lack).
func parserPath() (string, error) {
	if p, err := exec.LookPath("apparmor_parser"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("apparmor_parser not found")
}

// parserLoad loads a profile as containerd does: written to a file, given to apparmor_parser -Kr
// (replace, skip the cache); the run is bounded by parserTimeout.
func parserLoad(ctx context.Context, profile string) error {
	bin, err := parserPath()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp("", "cri-shim-apparmor-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(profile); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return runParser(ctx, bin, parserTimeout, "-Kr", f.Name())
}

// runParser runs the parser with args within timeout; its error carries the parser's output.
func runParser(ctx context.Context, bin string, timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%s %s: no answer within %s", bin, strings.Join(args, " "), timeout)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
