package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
)

// TestOCISpecIsABaseSpec: config oci-spec prints a spec base_runtime_spec accepts, with the version
// asked for.
func TestOCISpecIsABaseSpec(t *testing.T) {
	var buf bytes.Buffer
	if err := ociSpecMain([]string{"--oci-version", "1.0.2"}, &buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "base.json")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := config.Runtime{BaseRuntimeSpec: p}.LoadBaseSpec()
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "1.0.2" || len(s.Mounts) == 0 || s.Linux.CgroupsPath != "" {
		t.Fatalf("spec: version %q, %d mounts, cgroups path %q", s.Version, len(s.Mounts), s.Linux.CgroupsPath)
	}
}
