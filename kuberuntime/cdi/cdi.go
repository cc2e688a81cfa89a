// Package cdi injects Container Device Interface (CDI) devices into containers' OCI specs: the
// devices a container asks for through CRI (ContainerConfig.CDIDevices and the cdi.k8s.io/
// annotations a device plugin sets) and the ones NRI plugins add. What a device is (device nodes,
// env, mounts, hooks) comes from the CDI spec files in the registry's directories: trusted admin
// input, written by device plugins and drivers. The device names come from CRI clients and plugins
// and are checked: a malformed or unknown name is InvalidArgument.
package cdi

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
)

// DefaultSpecDirs are where the CDI spec files are by default, as containerd and CRI-O: the static
// ones in /etc/cdi, the ones drivers generate at run time in /var/run/cdi (which wins on a name
// both define).
var DefaultSpecDirs = []string{"/etc/cdi", "/var/run/cdi"}

// AnnotationPrefix starts the keys of the annotations that ask for CDI devices; a value is a
// comma-separated list of fully qualified device names.
const AnnotationPrefix = cdilib.AnnotationPrefix

// Registry resolves device names to the edits of the spec files in its directories. It watches
// them, so a spec written, changed or removed is seen without a restart; a directory created
// after the start is picked up at the next request.
type Registry struct {
	dirs  []string
	cache *cdilib.Cache
	// rescanMu makes concurrent misses wait for one rescan.
	rescanMu sync.Mutex
}

// New loads the spec files of dirs (later ones win on a device name both define) and starts
// watching them. Missing directories are no error. Spec files that do not parse are logged and
// left out.
func New(dirs []string) *Registry {
	dirs = slices.Clone(dirs)
	cache, _ := cdilib.NewCache(cdilib.WithSpecDirs(dirs...), cdilib.WithAutoRefresh(true)) // its error is always nil
	r := &Registry{dirs: dirs, cache: cache}
	for path, err := range cache.GetSpecDirErrors() {
		logrus.WithError(err).WithField("dir", path).Debug("CDI spec dir not watched (yet)")
	}
	for path, errs := range r.specErrors() {
		for _, err := range errs {
			logrus.WithError(err).WithField("file", path).Warn("CDI spec file left out")
		}
	}
	logrus.WithFields(logrus.Fields{"dirs": strings.Join(dirs, ","), "devices": len(cache.ListDevices())}).Info("CDI devices")
	return r
}

// Close stops watching the directories.
func (r *Registry) Close() {
	_ = r.cache.Configure(cdilib.WithAutoRefresh(false)) // its error is always nil
}

// Dirs are the registry's spec directories, lowest priority first.
func (r *Registry) Dirs() []string { return slices.Clone(r.dirs) }

// Requested is the CDI devices config asks for: its CDIDevices field first, then the devices of
// its cdi.k8s.io/ annotations by key, each once. A name that is not fully qualified
// (vendor.com/class=name) is InvalidArgument.
func Requested(config *runtime.ContainerConfig) ([]string, error) {
	var devices []string
	seen := map[string]bool{}
	add := func(name, from string) error {
		if _, _, _, err := parser.ParseQualifiedName(name); err != nil {
			return fmt.Errorf("%w: CDI device %q (%s): %w", errdefs.ErrInvalidArgument, name, from, err)
		}
		if !seen[name] {
			seen[name] = true
			devices = append(devices, name)
		}
		return nil
	}
	for _, d := range config.GetCDIDevices() {
		if err := add(d.GetName(), "cdi_devices"); err != nil {
			return nil, err
		}
	}
	annotations := config.GetAnnotations()
	keys := make([]string, 0, len(annotations))
	for k := range annotations {
		if strings.HasPrefix(k, AnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, name := range strings.Split(annotations[k], ",") {
			if err := add(name, "annotation "+k); err != nil {
				return nil, err
			}
		}
	}
	return devices, nil
}

// Resolve checks that every device is defined by a spec file. The unknown ones are
// InvalidArgument, named. A miss rescans the directories first: the watch handles a change some
// time after it, and a driver may write a device's spec file just before the container asking
// for it is created.
func (r *Registry) Resolve(devices []string) error {
	missing := r.missing(devices)
	if len(missing) == 0 {
		return nil
	}
	r.rescan()
	if missing = r.missing(devices); len(missing) > 0 {
		return r.unknown(missing)
	}
	return nil
}

// Inject applies the edits of devices (and of their spec files) to spec: device nodes with their
// cgroup rule, env, mounts, hooks. An unknown device is InvalidArgument and spec is left as it
// was.
func (r *Registry) Inject(spec *runtimespec.Spec, devices ...string) error {
	if len(devices) == 0 {
		return nil
	}
	for _, d := range devices {
		if _, _, _, err := parser.ParseQualifiedName(d); err != nil {
			return fmt.Errorf("%w: CDI device %q: %w", errdefs.ErrInvalidArgument, d, err)
		}
	}
	if err := r.Resolve(devices); err != nil {
		return err
	}
	unresolved, err := r.cache.InjectDevices(spec, devices...)
	if len(unresolved) > 0 {
		// Removed between Resolve and here.
		return r.unknown(unresolved)
	}
	if err != nil {
		return fmt.Errorf("CDI devices %s: %w", strings.Join(devices, ", "), err)
	}
	return nil
}

// missing is the devices no spec file defines. The cache first watches, and reads, any of its
// directories that appeared since the last request.
func (r *Registry) missing(devices []string) []string {
	_ = r.cache.Refresh() // the errors are those of bad spec files, named in unknown
	var missing []string
	for _, d := range devices {
		if r.cache.GetDevice(d) == nil {
			missing = append(missing, d)
		}
	}
	return missing
}

// rescan reads the directories again (restarting their watch, the one way the cache offers).
func (r *Registry) rescan() {
	r.rescanMu.Lock()
	defer r.rescanMu.Unlock()
	_ = r.cache.Configure(cdilib.WithSpecDirs(r.dirs...)) // its error is always nil
}

// unknown is the error of devices no spec file defines; it names the spec files that did not
// load, one of which may have been meant to define them.
func (r *Registry) unknown(devices []string) error {
	msg := fmt.Sprintf("unknown CDI device %s: no spec file in %s defines it", strings.Join(devices, ", "), strings.Join(r.dirs, ", "))
	if len(devices) > 1 {
		msg = fmt.Sprintf("unknown CDI devices %s: no spec file in %s defines them", strings.Join(devices, ", "), strings.Join(r.dirs, ", "))
	}
	var bad []string
	for path, errs := range r.specErrors() {
		if len(errs) > 0 {
			bad = append(bad, fmt.Sprintf("%s (%v)", path, errs[0]))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		msg += "; spec files left out: " + strings.Join(bad, "; ")
	}
	return fmt.Errorf("%w: %s", errdefs.ErrInvalidArgument, msg)
}

// specErrors is the errors of the spec files that did not load, by file. (The cache's errors
// also hold those of directories not watched, such as missing ones, which are no fault.)
func (r *Registry) specErrors() map[string][]error {
	errs := r.cache.GetErrors()
	for dir := range r.cache.GetSpecDirErrors() {
		delete(errs, dir)
	}
	return errs
}
