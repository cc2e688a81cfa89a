package checkpointarchive

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// tarEntries lists an archive's entries with their content (directories end in /).
func tarEntries(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out[hdr.Name] = string(data)
	}
}

func TestCheckLocation(t *testing.T) {
	dir := t.TempDir()
	for _, loc := range []string{"", "rel.tar", filepath.Join(dir, "missing", "c.tar"), dir} {
		if err := CheckLocation(loc); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v", loc, err)
		}
	}
	if err := CheckLocation(filepath.Join(dir, "c.tar")); err != nil {
		t.Error(err)
	}
}

func TestWriteTarArchive(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	files := map[string]string{
		"config.dump":             `{"id":"x"}`,
		"spec.dump":               `{}`,
		"checkpoint/pages-1.img":  strings.Repeat("p", 70000),
		"checkpoint/inventory.im": "inv",
	}
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	loc := filepath.Join(out, "c.tar")
	size, err := Write(src, loc)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(loc)
	if err != nil || fi.Size() != size || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive %v %v, size %d", fi, err, size)
	}
	got := tarEntries(t, loc)
	if len(got) != len(files)+1 || got["checkpoint/"] != "" {
		t.Fatalf("entries %v", keys(got))
	}
	for name, data := range files {
		if got[name] != data {
			t.Errorf("%s: %d bytes, want %d", name, len(got[name]), len(data))
		}
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		t.Fatalf("temp files left: %v", entries)
	}
	if !IsArchive(loc) {
		t.Error("not recognised as a checkpoint archive")
	}
	if IsArchive(filepath.Join(src, "config.dump")) || IsArchive("busybox") || IsArchive("/nonexistent.tar") {
		t.Error("recognised what is not a checkpoint archive")
	}
	// An unreadable tree leaves nothing at the location.
	loc2 := filepath.Join(out, "d.tar")
	if _, err := Write(filepath.Join(src, "missing"), loc2); err == nil {
		t.Fatal("archive of a missing dir")
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		t.Fatalf("left after a failure: %v", entries)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestCheckpointLocationNoReplace: a checkpoint archive never replaces what is at its location
// (a file, a symlink, a directory): AlreadyExists, and the thing there is left as it was (issue
// 19, finding 11).
func TestCheckpointLocationNoReplace(t *testing.T) {
	src, out, elsewhere := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, ConfigDump), []byte(`{"id":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(out, "existing.tar")
	if err := os.WriteFile(existing, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(elsewhere, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(out, "link.tar")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(out, "dangling.tar")
	if err := os.Symlink(filepath.Join(elsewhere, "new"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, loc := range []string{existing, link, dangling} {
		if err := CheckLocation(loc); !errdefs.IsAlreadyExists(err) {
			t.Errorf("checkLocation %s: %v, want AlreadyExists", loc, err)
		}
		// The location may appear between the check and the write: the write refuses too.
		if _, err := Write(src, loc); !errdefs.IsAlreadyExists(err) {
			t.Errorf("Write %s: %v, want AlreadyExists", loc, err)
		}
	}
	for _, p := range []string{existing, target} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "keep" {
			t.Errorf("%s: replaced (%d bytes, %v)", p, len(b), err)
		}
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink at the location was replaced: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(elsewhere, "new")); !os.IsNotExist(err) {
		t.Errorf("written through a dangling symlink: %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 3 {
		t.Errorf("temp files left: %v", entries)
	}
}

// TestCopyIntoRoot: a pod checkpoint reaches the caller's output directory through a handle
// opened once: a symlink swapped in for one of its entries leads nowhere outside it, and nothing
// there is replaced (issue 19, finding 11).
func TestCopyIntoRoot(t *testing.T) {
	work := t.TempDir()
	for name, data := range map[string]string{
		"counter/config.dump": "{}", "counter/checkpoint/inventory.img": "inv", PodDump: "{}",
	} {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	open := func(dir string) *os.Root {
		r, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}

	out := t.TempDir()
	if err := CopyInto(work, open(out), []string{"counter", PodDump}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"counter/checkpoint/inventory.img": "inv", PodDump: "{}"} {
		if b, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}

	// An entry swapped for a symlink out of the directory: refused, nothing written outside, and
	// what was copied is removed again.
	elsewhere := t.TempDir()
	out = t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(out, "counter")); err != nil {
		t.Fatal(err)
	}
	if err := CopyInto(work, open(out), []string{"counter", PodDump}); err == nil {
		t.Error("copied through a symlink")
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("written outside the output directory: %v", entries)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 1 {
		t.Errorf("output after a failed copy: %v", entries)
	}

	// An existing file is not replaced.
	out = t.TempDir()
	if err := os.WriteFile(filepath.Join(out, PodDump), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CopyInto(work, open(out), []string{"counter", PodDump}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("existing pod.dump: %v, want AlreadyExists", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, PodDump)); string(b) != "keep" {
		t.Errorf("pod.dump replaced: %q", b)
	}
	if _, err := os.Stat(filepath.Join(out, "counter")); !os.IsNotExist(err) {
		t.Errorf("partial copy left: %v", err)
	}
}
