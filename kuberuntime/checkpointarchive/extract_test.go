package checkpointarchive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// rawTarHeader is a ustar header block, built by hand: archive/tar's writer refuses to write the
// sparse headers these tests need.
func rawTarHeader(name string, typeflag byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typeflag
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// pad512 pads b to a multiple of 512 bytes.
func pad512(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// paxRecords encodes PAX extended header records.
func paxRecords(kv [][2]string) []byte {
	var out []byte
	for _, r := range kv {
		rec := " " + r[0] + "=" + r[1] + "\n"
		n := len(rec)
		for {
			l := len(fmt.Sprint(n + len(fmt.Sprint(n)))) // the length counts its own digits
			if l+len(rec) == n {
				break
			}
			n = l + len(rec)
		}
		out = append(out, fmt.Sprintf("%d%s", n, rec)...)
	}
	return out
}

// sparseTar is an archive with one GNU PAX sparse entry (format 0.1 or 1.0) that reads back as
// realSize bytes, nearly all of them a hole, from a few KB of archive.
func sparseTar(name string, realSize int64, v10 bool) []byte {
	data := []byte("x")
	var recs [][2]string
	var body []byte
	if v10 {
		recs = [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", name},
			{"GNU.sparse.realsize", fmt.Sprint(realSize)}}
		// The 1.0 sparse map is at the start of the data: one entry (offset, length).
		body = append(pad512([]byte(fmt.Sprintf("1\n%d\n1\n", realSize-1))), data...)
	} else {
		recs = [][2]string{{"GNU.sparse.size", fmt.Sprint(realSize)}, {"GNU.sparse.numblocks", "1"},
			{"GNU.sparse.map", fmt.Sprintf("%d,1", realSize-1)}}
		body = data
	}
	pax := paxRecords(recs)
	var out []byte
	out = append(out, rawTarHeader("PaxHeaders/"+name, tar.TypeXHeader, int64(len(pax)))...)
	out = append(out, pad512(pax)...)
	out = append(out, rawTarHeader(name, tar.TypeReg, int64(len(body)))...)
	out = append(out, pad512(body)...)
	return append(out, make([]byte, 1024)...)
}

// oldGNUSparseTar is an archive with one entry of the old GNU sparse type ('S').
func oldGNUSparseTar(name string, realSize int64) []byte {
	h := rawTarHeader(name, tar.TypeGNUSparse, 1)
	copy(h[257:265], "ustar  \x00")                        // GNU magic
	copy(h[386:398], fmt.Sprintf("%011o\x00", realSize-1)) // sparse[0].offset
	copy(h[398:410], fmt.Sprintf("%011o\x00", 1))          // sparse[0].numbytes
	copy(h[483:495], fmt.Sprintf("%011o\x00", realSize))   // realsize
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	out := append(h, pad512([]byte("x"))...)
	return append(out, make([]byte, 1024)...)
}

// tarOf is an archive of the given headers, each regular file with size bytes of 'a'.
func tarOf(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	b, err := tarBytes(hdrs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tarBytes(hdrs ...*tar.Header) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bytes.Repeat([]byte("a"), int(h.Size))); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// treeSize is the bytes of regular files under dir (their apparent sizes).
func treeSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestExtractCheckpointBomb: a checkpoint archive's extraction never writes more than the archive
// holds, nor more than the configured maximum; sparse entries are refused (issue 19, finding 3).
func TestExtractCheckpointBomb(t *testing.T) {
	// 64 MiB from ~2 KB of archive is enough to show it (a real bomb says terabytes).
	const realSize = 64 << 20
	for name, data := range map[string][]byte{
		"pax sparse 0.1": sparseTar("checkpoint/pages-1.img", realSize, false),
		"pax sparse 1.0": sparseTar("checkpoint/pages-1.img", realSize, true),
		"gnu sparse":     oldGNUSparseTar("checkpoint/pages-1.img", realSize),
	} {
		t.Run(name, func(t *testing.T) {
			// The crafted archive is what the tar reader takes for a 64 MiB file.
			tr := tar.NewReader(bytes.NewReader(data))
			hdr, err := tr.Next()
			if err != nil || hdr.Size != realSize {
				t.Fatalf("crafted archive: %+v %v", hdr, err)
			}
			p := filepath.Join(t.TempDir(), "c.tar")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			dst := t.TempDir()
			err = Extract(context.Background(), p, dst, 0)
			if n := treeSize(t, dst); n > int64(len(data)) {
				t.Errorf("a %d-byte archive wrote %d bytes", len(data), n)
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "sparse") {
				t.Errorf("sparse entry: %v, want InvalidArgument naming it", err)
			}
		})
	}

	t.Run("over the maximum", func(t *testing.T) {
		data := tarOf(t, &tar.Header{Name: "checkpoint/", Typeflag: tar.TypeDir, Mode: 0o700},
			&tar.Header{Name: "checkpoint/a.img", Typeflag: tar.TypeReg, Mode: 0o600, Size: 3000},
			&tar.Header{Name: "checkpoint/b.img", Typeflag: tar.TypeReg, Mode: 0o600, Size: 3000})
		p := filepath.Join(t.TempDir(), "c.tar")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		err := Extract(context.Background(), p, dst, 4096)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "4096") {
			t.Errorf("archive over the maximum: %v", err)
		}
		if n := treeSize(t, dst); n > 4096 {
			t.Errorf("wrote %d bytes with a maximum of 4096", n)
		}
		// Under the maximum it is extracted whole.
		dst = t.TempDir()
		if err := Extract(context.Background(), p, dst, 6000); err != nil || treeSize(t, dst) != 6000 {
			t.Errorf("archive under the maximum: %v, %d bytes", err, treeSize(t, dst))
		}
	})

	t.Run("canceled", func(t *testing.T) {
		data := tarOf(t, &tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o600, Size: 10})
		p := filepath.Join(t.TempDir(), "c.tar")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Extract(ctx, p, t.TempDir(), 0); err != context.Canceled {
			t.Errorf("canceled extraction: %v", err)
		}
	})
}

// TestExtractCheckpointEntries: entries that would leave the directory or are not plain files and
// directories are refused, and nothing is written outside the directory.
func TestExtractCheckpointEntries(t *testing.T) {
	for name, hdrs := range map[string][]*tar.Header{
		"parent":        {{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o600}},
		"inner parent":  {{Name: "a/../../evil", Typeflag: tar.TypeReg, Mode: 0o600}},
		"absolute":      {{Name: "/evil", Typeflag: tar.TypeReg, Mode: 0o600}},
		"symlink":       {{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}},
		"hardlink":      {{Name: "link", Typeflag: tar.TypeLink, Linkname: "../../../etc/passwd"}},
		"inner link":    {{Name: "a", Typeflag: tar.TypeReg, Mode: 0o600}, {Name: "b", Typeflag: tar.TypeLink, Linkname: "a"}},
		"char device":   {{Name: "sda", Typeflag: tar.TypeChar, Devmajor: 8}},
		"block device":  {{Name: "sda", Typeflag: tar.TypeBlock, Devmajor: 8}},
		"fifo":          {{Name: "fifo", Typeflag: tar.TypeFifo}},
		"duplicate":     {{Name: "a", Typeflag: tar.TypeReg, Mode: 0o600}, {Name: "a", Typeflag: tar.TypeReg, Mode: 0o600}},
		"file then dir": {{Name: "a", Typeflag: tar.TypeReg, Mode: 0o600}, {Name: "a/b", Typeflag: tar.TypeReg, Mode: 0o600}},
	} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "restore")
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "c.tar")
			if err := os.WriteFile(p, tarOf(t, hdrs...), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := Extract(context.Background(), p, dst, 0); !errdefs.IsInvalidArgument(err) {
				t.Errorf("%v, want InvalidArgument", err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 1 {
				t.Errorf("written outside the directory: %v", entries)
			}
		})
	}
}

// TestCopyCheckpointTree: RestorePod's copy of a checkpoint directory refuses sparse files and
// stops at the maximum size (issue 19, finding 3).
func TestCopyCheckpointTree(t *testing.T) {
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "checkpoint"), 0o700); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(src, "checkpoint", "pages-1.img")
	if err := os.WriteFile(big, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// 64 MiB that take one block on disk.
	if err := os.Truncate(big, 64<<20); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err := copyTree(context.Background(), src, dst, 0)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "sparse") {
		t.Errorf("sparse file: %v", err)
	}
	if n := treeSize(t, dst); n != 0 {
		t.Errorf("copied %d bytes of a sparse file", n)
	}

	if err := os.WriteFile(big, bytes.Repeat([]byte("a"), 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	dst = t.TempDir()
	if err := copyTree(context.Background(), src, dst, 4096); !errdefs.IsInvalidArgument(err) {
		t.Errorf("over the maximum: %v", err)
	}
	if n := treeSize(t, dst); n > 4096 {
		t.Errorf("copied %d bytes with a maximum of 4096", n)
	}
	dst = t.TempDir()
	if err := copyTree(context.Background(), src, dst, 0); err != nil || treeSize(t, dst) != 5000 {
		t.Errorf("plain copy: %v, %d bytes", err, treeSize(t, dst))
	}
}
