package main

import (
	"os"
	"path/filepath"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
)

func TestRuntimeHandlersFromConfig(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base.json")
	os.WriteFile(base, []byte(`{"ociVersion": "1.0.2", "process": {"cwd": "/"}, "root": {"path": "rootfs"}, "linux": {}}`), 0o600)
	cfg := config.Default()
	cfg.RuncBinary = "/bin/true"
	cfg.DefaultRuntimeName = "crun"
	cfg.Runtimes["crun"] = config.Runtime{BinaryName: "/usr/bin/crun", PodAnnotations: []string{"a/*"}, BaseRuntimeSpec: base}
	cfg.Runtimes["kata"] = config.Runtime{RuntimeType: "io.containerd.kata.v2", Snapshotter: "native", PrivilegedWithoutHostDevices: true}
	handlers, specs, snapshotters, err := runtimeHandlers(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(handlers) != 3 || handlers[0].Name != "crun" || handlers[1].Name != "kata" || handlers[2].Name != "runc" {
		t.Fatalf("handlers %+v: want the default (crun) first", handlers)
	}
	binary := func(i int) string { return handlers[i].Options.(*runcoptions.Options).GetBinaryName() }
	if handlers[0].Type != config.RuncRuntimeType || binary(0) != "/usr/bin/crun" || binary(2) != "/bin/true" {
		t.Fatalf("binaries %q %q: want crun's binary_name and runc_binary", binary(0), binary(2))
	}
	if handlers[1].Type != "io.containerd.kata.v2" || handlers[1].Options != nil || handlers[1].Snapshotter != "native" {
		t.Fatalf("kata %+v", handlers[1])
	}
	if len(snapshotters) != 1 || snapshotters["kata"] != "native" {
		t.Fatalf("snapshotters %v", snapshotters)
	}
	if specs["crun"].BaseSpec == nil || specs["crun"].PodAnnotations[0] != "a/*" || !specs["kata"].PrivilegedWithoutHostDevices {
		t.Fatalf("specs %+v", specs)
	}
}
