package main

import (
	"fmt"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/kuberuntime"
	"github.com/cri-shim/cri-shim/legacy"
)

// runtimeHandlers are the configured [runtimes.<name>] tables as the runtime takes them: the
// handlers (the default first), what each does to its pods' specs, and the snapshotter of those
// that name one (image pulls for the handler unpack with it).
func runtimeHandlers(cfg config.Config) ([]legacy.RuntimeHandler, map[string]kuberuntime.HandlerSpec, map[string]string, error) {
	var handlers []legacy.RuntimeHandler
	specs := map[string]kuberuntime.HandlerSpec{}
	snapshotters := map[string]string{}
	for _, name := range cfg.RuntimeNames() {
		rt := cfg.Runtimes[name]
		var h legacy.RuntimeHandler
		if rt.Type() == config.RuncRuntimeType {
			binary := rt.BinaryName
			if binary == "" && name == "runc" {
				// runc: runc_binary, else the one hack/setup.sh builds, else containerd's PATH.
				binary = kuberuntime.ResolveRuncBinary(cfg.RuncBinary)
			}
			h = kuberuntime.RuncHandler(name, binary)
		} else {
			h = legacy.RuntimeHandler{Name: name, Type: rt.Type()}
		}
		h.Snapshotter = rt.Snapshotter
		if rt.Snapshotter != "" {
			snapshotters[name] = rt.Snapshotter
		}
		base, err := rt.LoadBaseSpec()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("runtimes.%s.base_runtime_spec: %w", name, err)
		}
		specs[name] = kuberuntime.HandlerSpec{
			PodAnnotations:               rt.PodAnnotations,
			PrivilegedWithoutHostDevices: rt.PrivilegedWithoutHostDevices,
			BaseSpec:                     base,
		}
		handlers = append(handlers, h)
	}
	return handlers, specs, snapshotters, nil
}
