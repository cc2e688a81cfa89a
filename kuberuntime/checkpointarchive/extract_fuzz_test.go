package checkpointarchive

import (
	"archive/tar"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCheckpointArchive extracts a checkpoint archive made of the fuzzer's bytes, with a maximum
// size from the fuzzer too. The properties: no panic; nothing but directories and regular files
// is made, and nothing outside the extraction directory (a sibling file and directory stay as
// they were); never more bytes than the archive's size nor than the maximum. `make fuzz` runs it
// for a bounded time; plain `go test` runs the seeds.
func FuzzCheckpointArchive(f *testing.F) {
	reg := func(name string, size int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: size}
	}
	dir := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o700} }
	tb := func(hdrs ...*tar.Header) []byte {
		b, err := tarBytes(hdrs...)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	for _, seed := range [][]byte{
		tb(dir("checkpoint/"), reg("checkpoint/inventory.img", 3), reg(ConfigDump, 10), reg("rootfs-diff.tar", 100)),
		tb(reg("../sibling/evil", 3)),
		tb(reg("/abs", 3)),
		tb(&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../sibling"}, reg("link/evil", 1)),
		tb(&tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "../sibling/file"}),
		tb(reg("a", 1), reg("a", 1)),
		tb(reg("a", 1000), reg("b", 1000)),
		sparseTar("checkpoint/pages-1.img", 1<<40, false),
		sparseTar("checkpoint/pages-1.img", 1<<40, true),
		oldGNUSparseTar("checkpoint/pages-1.img", 1<<40),
		{},
	} {
		f.Add(seed, uint16(0))
		f.Add(seed, uint16(1500))
	}
	f.Fuzz(func(t *testing.T, data []byte, maxSize uint16) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "restore")
		sibling := filepath.Join(parent, "sibling")
		for _, d := range []string{dst, sibling} {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(sibling, "file"), []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		archive := filepath.Join(t.TempDir(), "c.tar")
		if err := os.WriteFile(archive, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = Extract(context.Background(), archive, dst, int64(maxSize))

		var written int64
		err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(parent, p)
			switch {
			case p == parent || rel == "restore" || rel == "sibling":
				return nil
			case rel == filepath.Join("sibling", "file"):
				if b, err := os.ReadFile(p); err != nil || string(b) != "keep" {
					t.Errorf("the sibling file changed: %q %v", b, err)
				}
				return nil
			case !strings.HasPrefix(rel, "restore"+string(filepath.Separator)):
				t.Errorf("written outside the extraction directory: %s", rel)
				return nil
			}
			if d.IsDir() {
				return nil
			}
			if !d.Type().IsRegular() {
				t.Errorf("%s: made a %v", rel, d.Type())
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			written += fi.Size()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if written > int64(len(data)) {
			t.Errorf("a %d-byte archive wrote %d bytes", len(data), written)
		}
		if maxSize > 0 && written > int64(maxSize) {
			t.Errorf("wrote %d bytes with a maximum of %d", written, maxSize)
		}
	})
}
