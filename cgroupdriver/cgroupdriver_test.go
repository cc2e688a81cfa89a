package cgroupdriver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestExpandSlice(t *testing.T) {
	for in, want := range map[string]string{
		"kubepods.slice":                          "/kubepods.slice",
		"kubepods-besteffort-pod1.slice":          "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice",
		"kubepods-burstable-pod1_2_3.slice":       "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2_3.slice",
		"test.slice":                              "/test.slice",
		"-.slice":                                 "/",
		"system.slice":                            "/system.slice",
		"kubepods-podabcd_ef01_2345_6789.slice":   "/kubepods.slice/kubepods-podabcd_ef01_2345_6789.slice",
		"user-1000.slice":                         "/user.slice/user-1000.slice",
		"machine-qemu\\x2d1\\x2dvm.slice":         "/machine.slice/machine-qemu\\x2d1\\x2dvm.slice",
		"kubepods-besteffort-podX.slice.slice":    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podX.slice.slice",
		"a-b-c-d.slice":                           "/a.slice/a-b.slice/a-b-c.slice/a-b-c-d.slice",
		"kubepods-guaranteed-pod00000000_1.slice": "/kubepods.slice/kubepods-guaranteed.slice/kubepods-guaranteed-pod00000000_1.slice",
	} {
		got, err := ExpandSlice(in)
		if err != nil || got != want {
			t.Errorf("ExpandSlice(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".slice", "kubepods", "kubepods.scope", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice", "/kubepods.slice", "--.slice"} {
		if got, err := ExpandSlice(in); err == nil {
			t.Errorf("ExpandSlice(%q) = %q, want an error", in, got)
		}
	}
}

func TestDir(t *testing.T) {
	for in, want := range map[string]string{
		"kubepods-besteffort-pod1.slice:cri-shim:ID": "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-shim-ID.scope",
		"test.slice:cri-shim:abc":                    "/test.slice/cri-shim-abc.scope",
		":cri-shim:abc":                              "/system.slice/cri-shim-abc.scope", // runc's default slice
		"kubepods.slice:cri-shim:sub.slice":          "/kubepods.slice/sub.slice",        // a slice as the unit: no scope
		// cgroupfs paths are their own directories, ':' and all.
		"/kubepods/besteffort/pod1/ID": "/kubepods/besteffort/pod1/ID",
		"/cri-shim/ID":                 "/cri-shim/ID",
		"/odd:dir:name":                "/odd:dir:name",
		"relative/path":                "relative/path",
	} {
		got, ok := Dir(in)
		if !ok || got != want {
			t.Errorf("Dir(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "a--b.slice:cri-shim:ID", "kubepods:cri-shim:ID", "kubepods.slice:cri-shim:"} {
		if got, ok := Dir(in); ok {
			t.Errorf("Dir(%q) = %q, want none", in, got)
		}
	}
}

func TestParentDir(t *testing.T) {
	for in, want := range map[string]string{
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice",
		"kubepods-burstable-pod1.slice":                                          "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice",
		"/test.slice":                                                            "/test.slice",
		"/kubepods/burstable/pod1":                                               "/kubepods/burstable/pod1",
	} {
		got, ok := ParentDir(in)
		if !ok || got != want {
			t.Errorf("ParentDir(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "a--b.slice"} {
		if got, ok := ParentDir(in); ok {
			t.Errorf("ParentDir(%q) = %q, want none", in, got)
		}
	}
}

// The kubelet's parents of each driver are taken; the other driver's form is InvalidArgument.
func TestCheckParent(t *testing.T) {
	systemdOK := []string{"", "kubepods-besteffort-pod1.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice",
		"/test.slice", "kubepods.slice", "/kubepods.slice/kubepods-pod1.slice"}
	cgroupfsOK := []string{"", "/kubepods/besteffort/pod1", "/kubepods", "kubepods/pod1", "/odd:name"}
	for _, p := range systemdOK {
		if err := Systemd.CheckParent(p); err != nil {
			t.Errorf("systemd %q: %v", p, err)
		}
	}
	for _, p := range cgroupfsOK {
		for _, d := range []Driver{Cgroupfs, ""} {
			if err := d.CheckParent(p); err != nil {
				t.Errorf("%q %q: %v", d, p, err)
			}
		}
	}
	for _, p := range cgroupfsOK[1:] {
		if err := Systemd.CheckParent(p); !errdefs.IsInvalidArgument(err) {
			t.Errorf("systemd took cgroupfs parent %q: %v", p, err)
		}
	}
	for _, p := range systemdOK[1:] {
		if err := Cgroupfs.CheckParent(p); !errdefs.IsInvalidArgument(err) {
			t.Errorf("cgroupfs took systemd parent %q: %v", p, err)
		}
	}
	for _, p := range []string{
		"a--b.slice",                       // invalid slice name
		"/kubepods/besteffort/pod1.slice",  // a slice at a path that is not its expansion
		"/other.slice/kubepods-pod1.slice", // ditto
		"x:y.slice",                        // would split into more than slice:prefix:name
	} {
		if err := Systemd.CheckParent(p); !errdefs.IsInvalidArgument(err) {
			t.Errorf("systemd took %q: %v", p, err)
		}
	}
}

func TestCgroupsPath(t *testing.T) {
	for _, c := range []struct {
		d             Driver
		parent, id    string
		want, wantDir string
	}{
		{Systemd, "kubepods-besteffort-pod1.slice", "ID", "kubepods-besteffort-pod1.slice:cri-shim:ID",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-shim-ID.scope"},
		{Systemd, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice", "ID", "kubepods-besteffort-pod1.slice:cri-shim:ID",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-shim-ID.scope"},
		{Systemd, "", "ID", "system.slice:cri-shim:ID", "/system.slice/cri-shim-ID.scope"},
		{Cgroupfs, "/kubepods/besteffort/pod1", "ID", "/kubepods/besteffort/pod1/ID", "/kubepods/besteffort/pod1/ID"},
		{"", "/kubepods/besteffort/pod1", "ID", "/kubepods/besteffort/pod1/ID", "/kubepods/besteffort/pod1/ID"},
		{Cgroupfs, "", "ID", "", ""},
	} {
		got := c.d.CgroupsPath(c.parent, c.id)
		if got != c.want {
			t.Errorf("%q CgroupsPath(%q) = %q, want %q", c.d, c.parent, got, c.want)
		}
		if dir, _ := Dir(got); dir != c.wantDir {
			t.Errorf("Dir(%q) = %q, want %q", got, dir, c.wantDir)
		}
	}
}

// systemd is the default where systemd booted the host (/run/systemd/system is a directory).
func TestDetectAndParse(t *testing.T) {
	old := systemdRunDir
	defer func() { systemdRunDir = old }()
	dir := t.TempDir()
	systemdRunDir = filepath.Join(dir, "run/systemd/system")
	if Detect() != Cgroupfs || SystemdRunning() {
		t.Fatal("no /run/systemd/system: want cgroupfs")
	}
	if d, err := Parse(""); err != nil || d != Cgroupfs {
		t.Fatalf("Parse(\"\") without systemd = %q, %v", d, err)
	}
	if err := os.MkdirAll(filepath.Dir(systemdRunDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(systemdRunDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if Detect() != Cgroupfs {
		t.Fatal("/run/systemd/system a file: want cgroupfs")
	}
	os.Remove(systemdRunDir)
	if err := os.Mkdir(systemdRunDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if Detect() != Systemd || !SystemdRunning() {
		t.Fatal("/run/systemd/system a directory: want systemd")
	}
	if d, err := Parse(""); err != nil || d != Systemd {
		t.Fatalf("Parse(\"\") with systemd = %q, %v", d, err)
	}
	for s, want := range map[string]Driver{"systemd": Systemd, "cgroupfs": Cgroupfs} {
		if d, err := Parse(s); err != nil || d != want {
			t.Errorf("Parse(%q) = %q, %v", s, d, err)
		}
	}
	for _, s := range []string{"Systemd", "cgroupFS", "none"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q): want an error", s)
		}
	}
}
