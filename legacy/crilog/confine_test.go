package crilog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A log confined to its directory (InDir) is never created or appended outside it, whatever
// symlinks sit in the directory; symlinks that stay inside, and a symlinked directory, work.
func TestInDirConfinesTheLog(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "pod")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{dir, outside, filepath.Join(dir, "real")} {
		os.MkdirAll(d, 0o755)
	}
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "evil"))                  // a dir leading out
	os.Symlink(victim, filepath.Join(dir, "evil.log"))               // a file leading out
	os.Symlink("../outside/new", filepath.Join(dir, "dangling.log")) // relative, out, not there yet
	os.Symlink("real", filepath.Join(dir, "inside"))                 // stays inside
	os.Symlink(dir, filepath.Join(base, "linkdir"))                  // the log dir through a symlink

	for _, tc := range []struct {
		dir, rel string
		escapes  bool
	}{
		{dir, "c/0.log", false},
		{dir, "c.log", false},
		{dir, "inside/c.log", false},
		{filepath.Join(base, "linkdir"), "d/0.log", false},
		{dir, "evil/0.log", true},
		{dir, "evil.log", true},
		{dir, "dangling.log", true},
		{dir, "../outside/x.log", true},
	} {
		w, err := Open(filepath.Join(tc.dir, tc.rel), InDir(tc.dir))
		if tc.escapes {
			// A symlink at the log path itself is refused as not a regular file, wherever it leads.
			if !errors.Is(err, ErrEscapes) && !(errors.Is(err, ErrNotRegular) && strings.HasSuffix(tc.rel, ".log") && !strings.Contains(tc.rel, "/")) {
				t.Errorf("%s: err %v, want ErrEscapes", tc.rel, err)
			}
			if w != nil {
				w.Close()
			}
			if err := CheckInDir(tc.dir, tc.rel); !errors.Is(err, ErrEscapes) && tc.rel != "dangling.log" {
				t.Errorf("CheckInDir %s: %v, want ErrEscapes", tc.rel, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.rel, err)
			continue
		}
		if err := w.WriteEntry(Stdout, TagFull, []byte("hello")); err != nil {
			t.Error(err)
		}
		w.Close()
		if err := CheckInDir(tc.dir, tc.rel); err != nil {
			t.Errorf("CheckInDir %s: %v", tc.rel, err)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("a file outside the log dir was written: %q", b)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Fatalf("files created outside the log dir: %v", ents)
	}
}

// A log file swapped for a symlink leading out after the writer opened it is not followed by
// Reopen (log rotation).
func TestReopenDoesNotFollowAnEscapingSymlink(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "pod")
	os.MkdirAll(dir, 0o755)
	victim := filepath.Join(base, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	p := filepath.Join(dir, "c.log")
	w, err := Open(p, InDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	os.Remove(p)
	os.Symlink(victim, p)
	if err := w.Reopen(); !errors.Is(err, ErrEscapes) && !errors.Is(err, ErrNotRegular) {
		t.Fatalf("reopen through an escaping symlink: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Fatalf("victim written: %q", b)
	}
}
