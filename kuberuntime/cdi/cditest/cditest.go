// Package cditest writes CDI spec files for tests.
package cditest

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteSpec writes a CDI spec file in dir defining vendor.example.com/device=<name>: the host's
// /dev/null as /dev/vendor-<name>, env FOO=bar and a read-only bind mount at /etc/vendor-<name>
// of a file in dataDir holding "hello from <name>", whose path it returns. The file is written
// aside and renamed in, as drivers do, so that a watch never reads half of it.
func WriteSpec(t testing.TB, dir, dataDir, name string) string {
	t.Helper()
	src := filepath.Join(dataDir, "vendor-"+name+".data")
	if err := os.WriteFile(src, []byte("hello from "+name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body := `cdiVersion: "0.6.0"
kind: vendor.example.com/device
devices:
- name: ` + name + `
  containerEdits:
    deviceNodes:
    - path: /dev/vendor-` + name + `
      hostPath: /dev/null
    env: ["FOO=bar"]
    mounts:
    - hostPath: ` + src + `
      containerPath: /etc/vendor-` + name + `
      options: ["ro", "bind"]
`
	tmp := filepath.Join(dir, ".tmp-"+name)
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "vendor-"+name+".yaml")); err != nil {
		t.Fatal(err)
	}
	return src
}
