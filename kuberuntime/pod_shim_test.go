package kuberuntime

import (
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/cri-shim/cri-shim/legacy"
)

// The task options that send a task to the pod's shim replace the container's runtime options in
// the shim's create: they keep the handler's runc options, and leave the handler's own untouched.
func TestTaskEndpointOptionsKeepTheHandlersOptions(t *testing.T) {
	h := legacy.RuntimeHandler{Options: &runcoptions.Options{BinaryName: "/usr/bin/crun", SystemdCgroup: true}}
	opts, ok := taskEndpointOptions(h, "ttrpc+unix:///run/containerd/s/x")
	if !ok {
		t.Fatal("runc options refused")
	}
	if opts.BinaryName != "/usr/bin/crun" || !opts.SystemdCgroup {
		t.Errorf("handler options lost: %+v", opts)
	}
	if opts.TaskApiAddress != "ttrpc+unix:///run/containerd/s/x" || opts.TaskApiVersion != shimTaskAPIVersion {
		t.Errorf("endpoint: %q v%d", opts.TaskApiAddress, opts.TaskApiVersion)
	}
	if o := h.Options.(*runcoptions.Options); o.TaskApiAddress != "" {
		t.Errorf("the handler's options were changed: %+v", o)
	}

	if opts, ok := taskEndpointOptions(legacy.RuntimeHandler{}, "e"); !ok || opts.TaskApiAddress != "e" {
		t.Errorf("no handler options: %+v %v", opts, ok)
	}
	if _, ok := taskEndpointOptions(legacy.RuntimeHandler{Options: struct{}{}}, "e"); ok {
		t.Error("options of another type taken for runc's")
	}
}
