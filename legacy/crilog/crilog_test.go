package crilog

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var fixed = time.Date(2024, 5, 6, 7, 8, 9, 12345, time.UTC)

func clock() time.Time { return fixed }

const ts = "2024-05-06T07:08:09.000012345Z"

func readLog(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if s == "" {
		return nil
	}
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("log does not end with a newline: %q", s)
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries %q, want %d %q", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

func TestCopy(t *testing.T) {
	cases := []struct {
		name  string
		max   int
		input string
		want  []string
	}{
		{"full lines", 0, "hello\nworld\n", []string{ts + " stdout F hello", ts + " stdout F world"}},
		{"crlf", 0, "a\r\nb\n", []string{ts + " stdout F a", ts + " stdout F b"}},
		{"partial at end", 0, "a\nno newline", []string{ts + " stdout F a", ts + " stdout P no newline"}},
		{"empty line", 0, "\n\nx\n", []string{ts + " stdout F ", ts + " stdout F ", ts + " stdout F x"}},
		{"nothing", 0, "", nil},
		{"long line split", 20, strings.Repeat("a", 45) + "\n", []string{
			ts + " stdout P " + strings.Repeat("a", 20),
			ts + " stdout P " + strings.Repeat("a", 20),
			ts + " stdout F " + strings.Repeat("a", 5),
		}},
		{"exactly max", 20, strings.Repeat("b", 20) + "\nc\n", []string{
			ts + " stdout F " + strings.Repeat("b", 20), ts + " stdout F c",
		}},
		{"long partial at end", 20, strings.Repeat("d", 30), []string{
			ts + " stdout P " + strings.Repeat("d", 20), ts + " stdout P " + strings.Repeat("d", 10),
		}},
		{"tiny max", 4, "abcdefghij\n", []string{
			ts + " stdout P abcd", ts + " stdout P efgh", ts + " stdout F ij",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "0.log")
			w, err := Open(path, WithClock(clock), WithMaxLineSize(c.max))
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Copy(Stdout, strings.NewReader(c.input)); err != nil {
				t.Fatal(err)
			}
			w.Close()
			equal(t, readLog(t, path), c.want)
		})
	}
}

// A line that arrives in pieces (a slow writer) is still one entry.
func TestCopyPiecesMakeOneLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := Open(path, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() { done <- w.Copy(Stderr, pr) }()
	for _, p := range []string{"hel", "lo wo", "rld\nsecond", "\n"} {
		pw.Write([]byte(p))
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	equal(t, readLog(t, path), []string{ts + " stderr F hello world", ts + " stderr F second"})
}

func TestBothStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := Open(path, WithClock(clock), WithMaxLineSize(64))
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	line := strings.Repeat("x", 100) + "\n" // split into 64 + 36
	var wg sync.WaitGroup
	for _, s := range []Stream{Stdout, Stderr} {
		wg.Add(1)
		go func(s Stream) {
			defer wg.Done()
			pr, pw := io.Pipe()
			go func() {
				for i := 0; i < n; i++ {
					pw.Write([]byte(line))
				}
				pw.Close()
			}()
			if err := w.Copy(s, pr); err != nil {
				t.Error(err)
			}
		}(s)
	}
	wg.Wait()
	w.Close()
	got := readLog(t, path)
	if len(got) != 4*n {
		t.Fatalf("got %d entries, want %d", len(got), 4*n)
	}
	counts := map[string]int{}
	for _, e := range got {
		f := strings.SplitN(e, " ", 4)
		if len(f) != 4 || f[0] != ts {
			t.Fatalf("malformed entry %q", e)
		}
		switch {
		case f[2] == "P" && len(f[3]) == 64, f[2] == "F" && len(f[3]) == 36:
		default:
			t.Fatalf("unexpected entry %q", e)
		}
		counts[f[1]+f[2]]++
	}
	for _, k := range []string{"stdoutP", "stdoutF", "stderrP", "stderrF"} {
		if counts[k] != n {
			t.Errorf("%s: %d entries, want %d", k, counts[k], n)
		}
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	w, err := Open(path, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.WriteEntry(Stdout, TagFull, []byte("before")); err != nil {
		t.Fatal(err)
	}
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	// Until reopened, entries go to the renamed file.
	if err := w.WriteEntry(Stdout, TagFull, []byte("still old")); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteEntry(Stderr, TagFull, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	equal(t, readLog(t, rotated), []string{ts + " stdout F before", ts + " stdout F still old"})
	equal(t, readLog(t, path), []string{ts + " stderr F after"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != ErrClosed {
		t.Fatalf("Reopen after Close: %v, want ErrClosed", err)
	}
	if err := w.WriteEntry(Stdout, TagFull, nil); err != ErrClosed {
		t.Fatalf("write after Close: %v, want ErrClosed", err)
	}
}

func TestTimestampParses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteEntry(Stdout, TagFull, []byte("x"))
	w.Close()
	e := readLog(t, path)[0]
	if _, err := time.Parse(time.RFC3339Nano, strings.SplitN(e, " ", 2)[0]); err != nil {
		t.Fatalf("timestamp of %q: %v", e, err)
	}
}
