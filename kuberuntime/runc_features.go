package kuberuntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// DefaultRuncBinary is where hack/setup.sh builds a current runc (Debian's runc 1.1 can do
// neither idmapped mounts nor CRI user namespaces).
const DefaultRuncBinary = "/var/cache/cri-shim/bin/runc"

// ResolveRuncBinary is the runc the default handler runs: the configured one, else
// DefaultRuncBinary when it is an executable, else "" (runc on containerd's PATH).
func ResolveRuncBinary(configured string) string {
	if configured != "" {
		return configured
	}
	if st, err := os.Stat(DefaultRuncBinary); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return DefaultRuncBinary
	}
	return ""
}

// RuncHandler is a runtime handler running containerd-shim-runc-v2 with the runc at binary
// ("": the shim finds runc on its PATH).
func RuncHandler(name, binary string) legacy.RuntimeHandler {
	h := legacy.RuntimeHandler{Name: name, Type: "io.containerd.runc.v2"}
	if binary != "" {
		h.Options = &runcoptions.Options{BinaryName: binary}
	}
	return h
}

// runtimeHandlers are the handlers pods may name, by name ("" the first), each with the cgroup
// driver: the sandboxes' and the containers' tasks are made with these options.
func runtimeHandlers(opts Options) map[string]legacy.RuntimeHandler {
	m := map[string]legacy.RuntimeHandler{}
	for i, h := range opts.RuntimeHandlers {
		if h.Type == "" {
			h.Type = "io.containerd.runc.v2"
		}
		h = withCgroupDriver(h, opts.CgroupDriver)
		if i == 0 {
			m[""] = h
		}
		m[h.Name] = h
	}
	return m
}

// withCgroupDriver has a runc handler drive cgroups as d says (runc's SystemdCgroup). Under cgroupfs
// a handler without options keeps none: the shim's defaults are cgroupfs. Options of another
// runtime's type are left alone.
func withCgroupDriver(h legacy.RuntimeHandler, d cgroupdriver.Driver) legacy.RuntimeHandler {
	if h.Type != "io.containerd.runc.v2" {
		return h
	}
	var o *runcoptions.Options
	switch cur := h.Options.(type) {
	case nil:
		if !d.IsSystemd() {
			return h
		}
		o = &runcoptions.Options{}
	case *runcoptions.Options:
		o = proto.Clone(cur).(*runcoptions.Options)
	default:
		return h
	}
	o.SystemdCgroup = d.IsSystemd()
	h.Options = o
	return h
}

// RuncBinary is the runc the handler h runs: its options' BinaryName, else "runc" (PATH).
func RuncBinary(h legacy.RuntimeHandler) string {
	if o, ok := h.Options.(*runcoptions.Options); ok && o.GetBinaryName() != "" {
		return o.GetBinaryName()
	}
	return "runc"
}

// runcFeatures is what `runc features` reports that cri-shim relies on.
type runcFeatures struct {
	MountOptions []string `json:"mountOptions"`
	Linux        *struct {
		Namespaces      []string `json:"namespaces"`
		MountExtensions *struct {
			IDMap *struct {
				Enabled *bool `json:"enabled"`
			} `json:"idmap"`
		} `json:"mountExtensions"`
	} `json:"linux"`
}

// userns tells whether runc creates user namespaces and idmapped mounts (runc ≥ 1.2).
func (f *runcFeatures) userns() bool {
	if f == nil || f.Linux == nil || !slices.Contains(f.Linux.Namespaces, "user") {
		return false
	}
	m := f.Linux.MountExtensions
	return m != nil && m.IDMap != nil && m.IDMap.Enabled != nil && *m.IDMap.Enabled
}

var (
	runcFeaturesMu    sync.Mutex
	runcFeaturesCache = map[string]*runcFeatures{}
)

// probeRunc runs `<binary> features` once per binary; nil when runc cannot tell (runc < 1.1.0).
func probeRunc(binary string) *runcFeatures {
	runcFeaturesMu.Lock()
	defer runcFeaturesMu.Unlock()
	if f, ok := runcFeaturesCache[binary]; ok {
		return f
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var f *runcFeatures
	out, err := exec.CommandContext(ctx, binary, "features").Output()
	if err != nil {
		logrus.WithError(err).WithField("oci_runtime", binary).Info("OCI runtime features unavailable (no features command): recursive read-only mounts and user namespaces off")
	} else if err := json.Unmarshal(out, &f); err != nil {
		logrus.WithError(err).WithField("oci_runtime", binary).Warn("runc features: unreadable output")
		f = nil
	}
	runcFeaturesCache[binary] = f
	return f
}

// RecursiveReadOnlySupported tells whether the default runc (ResolveRuncBinary) applies recursive
// read-only mounts ("rro", runc ≥ 1.1 on a kernel with mount_setattr). It asks runc once.
func RecursiveReadOnlySupported() bool {
	bin := ResolveRuncBinary("")
	if bin == "" {
		bin = "runc"
	}
	f := probeRunc(bin)
	return f != nil && slices.Contains(f.MountOptions, "rro")
}

// specHost is what containers' specs read from the host: this one, with the default runc's
// recursive read-only support.
func specHost() containerspec.Host {
	h := containerspec.DefaultHost()
	h.RecursiveReadOnly = RecursiveReadOnlySupported
	return h
}

// specHostFor is specHost for the containers of handler h: recursive read-only mounts are asked
// of its own OCI runtime (Debian 12's crun 1.8.1 has no features command, so none are made for it).
func specHostFor(h legacy.RuntimeHandler) containerspec.Host {
	host := containerspec.DefaultHost()
	host.RecursiveReadOnly = func() bool {
		f := probeHandler(h)
		return f != nil && slices.Contains(f.MountOptions, "rro")
	}
	return host
}

// probeHandler is the features of h's OCI runtime: nil for a shim other than runc's, whose
// runtime cri-shim cannot ask, and for a runtime without a features command.
func probeHandler(h legacy.RuntimeHandler) *runcFeatures {
	if h.Type != "" && h.Type != "io.containerd.runc.v2" {
		return nil
	}
	return probeRunc(RuncBinary(h))
}

// HandlerFeatures probes (once per handler) what the handler named name ("" the default) can do:
// recursive read-only mounts when its runc has "rro"; user namespaces when its runc creates user
// namespaces and idmapped mounts, its snapshotter mounts layers idmapped ("remap-ids": overlayfs
// on a kernel ≥ 5.19), and the kernel really idmaps a mount of the daemon's root dir (where the
// pod's hosts, hostname and resolv.conf and the image volumes live).
func (r *ContainerdRuntime) HandlerFeatures(ctx context.Context, name string) legacy.HandlerFeatures {
	h, ok := r.handlers[name]
	if !ok {
		return legacy.HandlerFeatures{}
	}
	r.featuresMu.Lock()
	defer r.featuresMu.Unlock()
	if f, ok := r.features[h.Name]; ok {
		return f
	}
	rf := probeHandler(h)
	f := legacy.HandlerFeatures{RecursiveReadOnlyMounts: rf != nil && slices.Contains(rf.MountOptions, "rro")}
	log := logrus.WithFields(logrus.Fields{"handler": h.Name, "oci_runtime": RuncBinary(h)})
	why := ""
	switch {
	case h.Type != "io.containerd.runc.v2":
		why = fmt.Sprintf("the features of %s's runtime cannot be probed", h.Type)
	case !rf.userns():
		why = "the OCI runtime reports no user namespaces or idmapped mounts (runc ≥ 1.2 needed; a runtime without a features command, such as Debian 12's crun 1.8.1, reports none)"
	default:
		ctx, cancel := context.WithTimeout(r.withNS(ctx), 10*time.Second)
		caps, err := r.client.GetSnapshotterCapabilities(ctx, snapshotterOr(h.Snapshotter))
		cancel()
		switch {
		case err != nil:
			why = fmt.Sprintf("snapshotter %s capabilities: %v", snapshotterOr(h.Snapshotter), err)
		case !slices.Contains(caps, "remap-ids"):
			why = fmt.Sprintf("snapshotter %s cannot idmap image layers (overlayfs on a kernel ≥ 5.19 needed)", snapshotterOr(h.Snapshotter))
		default:
			if err := idmapMountWorks(r.opts.RootDir); err != nil {
				why = fmt.Sprintf("idmapped mounts of %s: %v", r.opts.RootDir, err)
			}
		}
	}
	f.UserNamespaces = why == ""
	if why != "" {
		log.WithField("reason", why).Info("user namespaces not supported")
	} else {
		log.Info("user namespaces supported")
	}
	if r.features == nil {
		r.features = map[string]legacy.HandlerFeatures{}
	}
	r.features[h.Name] = f
	return f
}

// idmapMountWorks makes an idmapped (detached) mount of dir, as runc would: its filesystem and the
// kernel support idmapped mounts when that succeeds.
func idmapMountWorks(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	userns, err := mount.GetUsernsFD("0:65536:65536", "0:65536:65536")
	if err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	defer userns.Close()
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	err = unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())})
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("mount_setattr: the filesystem does not support idmapped mounts on this kernel: %w", err)
	}
	if err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}
