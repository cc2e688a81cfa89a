package crilog

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Copy writes the entries of one read together, but never holds output back while it waits for
// more: what was read is in the file before the next read returns.
func TestCopyWritesBeforeWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := Open(path, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- w.Copy(Stdout, pr) }()
	if _, err := pw.Write([]byte("a\nb\npartial")); err != nil {
		t.Fatal(err)
	}
	want := []string{ts + " stdout F a", ts + " stdout F b"}
	deadline := time.Now().Add(5 * time.Second)
	for len(readLog(t, path)) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	equal(t, readLog(t, path), want)
	pw.Write([]byte(" line\n" + strings.Repeat("x", 5) + "\r\n"))
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	equal(t, readLog(t, path), append(want, ts+" stdout F partial line", ts+" stdout F xxxxx"))
}

// Many short lines from one read, gathered into batches, come out complete and in order.
func TestCopyManyLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	w, err := Open(path, WithClock(clock), WithMaxLineSize(100))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var in strings.Builder
	var want []string
	for i := range 5000 {
		line := strings.Repeat(string(rune('a'+i%26)), i%150)
		in.WriteString(line + "\n")
		if len(line) > 100 {
			want = append(want, ts+" stderr P "+line[:100], ts+" stderr F "+line[100:])
		} else {
			want = append(want, ts+" stderr F "+line)
		}
	}
	if err := w.Copy(Stderr, strings.NewReader(in.String())); err != nil {
		t.Fatal(err)
	}
	equal(t, readLog(t, path), want)
}
