package crilog

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const sampleLog = `2026-01-02T03:04:05.000000001Z stdout F one
2026-01-02T03:04:06.000000000Z stderr F err one
2026-01-02T03:04:07.000000000Z stdout P tw
not a log line at all
2026-01-02T03:04:07.500000000Z stderr F err two
2026-01-02T03:04:08.000000000Z stdout F o
2026-01-02T03:04:09.000000000Z stdout F three
`

func writeLog(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readLogs(t *testing.T, path string, opts *LogOptions) (string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := ReadLogs(context.Background(), path, opts, &out, &errOut, nil); err != nil {
		t.Fatalf("ReadLogs: %v", err)
	}
	return out.String(), errOut.String()
}

func i64(n int64) *int64 { return &n }

func TestReadLogsJoinsPartialLinesAndSplitsStreams(t *testing.T) {
	out, errOut := readLogs(t, writeLog(t, sampleLog), nil)
	if out != "one\ntwo\nthree\n" {
		t.Errorf("stdout %q", out)
	}
	if errOut != "err one\nerr two\n" {
		t.Errorf("stderr %q", errOut)
	}
}

func TestReadLogsOptions(t *testing.T) {
	path := writeLog(t, sampleLog)
	since := time.Date(2026, 1, 2, 3, 4, 7, 0, time.UTC)
	for _, tc := range []struct {
		name           string
		opts           LogOptions
		stdout, stderr string
	}{
		{"tail 2 counts joined lines of both streams", LogOptions{TailLines: i64(2)}, "two\nthree\n", ""},
		{"tail 3", LogOptions{TailLines: i64(3)}, "two\nthree\n", "err two\n"},
		{"tail 0", LogOptions{TailLines: i64(0)}, "", ""},
		{"tail more than there is", LogOptions{TailLines: i64(100)}, "one\ntwo\nthree\n", "err one\nerr two\n"},
		{"since keeps lines from then on", LogOptions{SinceTime: since}, "two\nthree\n", "err two\n"},
		{"timestamps of the line's first entry", LogOptions{TailLines: i64(2), Timestamps: true},
			"2026-01-02T03:04:07Z two\n2026-01-02T03:04:09Z three\n", ""},
		{"limit bytes cuts the output", LogOptions{LimitBytes: i64(6)}, "one\n", "er"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut := readLogs(t, path, &tc.opts)
			if out != tc.stdout || errOut != tc.stderr {
				t.Errorf("got stdout %q stderr %q, want %q %q", out, errOut, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestReadLogsBadOptionsAndMissingFile(t *testing.T) {
	path := writeLog(t, sampleLog)
	if err := ReadLogs(context.Background(), path, &LogOptions{TailLines: i64(-1)}, nil, nil, nil); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("negative tail: %v", err)
	}
	if err := ReadLogs(context.Background(), path, &LogOptions{LimitBytes: i64(0)}, nil, nil, nil); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("zero limit: %v", err)
	}
	if err := ReadLogs(context.Background(), path+".gone", nil, nil, nil, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadLogsDropsOverlongFileLine(t *testing.T) {
	long := "2026-01-02T03:04:05Z stdout F " + strings.Repeat("x", MaxReadLineSize+10) + "\n"
	out, _ := readLogs(t, writeLog(t, long+"2026-01-02T03:04:06Z stdout F after\n"), nil)
	if out != "after\n" {
		t.Errorf("stdout %d bytes, want only the line after the overlong one", len(out))
	}
}

func TestReadLogsWritesOverlongJoinedLineInPieces(t *testing.T) {
	part := "2026-01-02T03:04:05Z stdout P " + strings.Repeat("y", MaxReadLineSize/2+1) + "\n"
	out, _ := readLogs(t, writeLog(t, part+part+part+"2026-01-02T03:04:06Z stdout F z\n"), nil)
	if want := 3*(MaxReadLineSize/2+1) + 2; len(out) != want || !strings.HasSuffix(out, "yz\n") {
		t.Errorf("stdout %d bytes, want %d ending in yz", len(out), want)
	}
}

func TestReadLogsUnterminatedPartialAtEnd(t *testing.T) {
	out, _ := readLogs(t, writeLog(t, "2026-01-02T03:04:05Z stdout P no newline\n"), nil)
	if out != "no newline" {
		t.Errorf("stdout %q", out)
	}
}

func TestReadLogsFollowUntilContainerExits(t *testing.T) {
	defer func(d time.Duration) { FollowPollInterval = d }(FollowPollInterval)
	FollowPollInterval = 5 * time.Millisecond
	path := writeLog(t, "2026-01-02T03:04:05Z stdout F first\n")
	var running atomic.Bool
	running.Store(true)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- ReadLogs(context.Background(), path, &LogOptions{Follow: true, TailLines: i64(0)}, &out, nil, running.Load)
	}()
	time.Sleep(30 * time.Millisecond)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("2026-01-02T03:04:06Z stdout F sec") // its newline comes later
	time.Sleep(30 * time.Millisecond)
	f.WriteString("ond\n2026-01-02T03:04:07Z stdout F last\n")
	f.Close()
	running.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the container exited")
	}
	if out.String() != "second\nlast\n" {
		t.Errorf("stdout %q", out.String())
	}
}

func TestReadLogsFollowEndsWithContextAndFollowsRotation(t *testing.T) {
	defer func(d time.Duration) { FollowPollInterval = d }(FollowPollInterval)
	FollowPollInterval = 5 * time.Millisecond
	path := writeLog(t, "2026-01-02T03:04:05Z stdout F old\n")
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan error, 1)
	go func() { done <- ReadLogs(ctx, path, &LogOptions{Follow: true}, &out, nil, nil) }()
	time.Sleep(30 * time.Millisecond)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("2026-01-02T03:04:06Z stdout F new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "old\nnew\n" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with its context")
	}
	if out.String() != "old\nnew\n" {
		t.Errorf("stdout %q", out.String())
	}
}

// A FIFO, a device or a symlink at the log path is refused at once (a FIFO would block the open).
func TestReadLogsRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.log")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(writeLog(t, sampleLog), link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, link, "/dev/zero"} {
		done := make(chan error, 1)
		go func() { done <- ReadLogs(context.Background(), p, nil, io.Discard, io.Discard, nil) }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s: %v, want ErrNotRegular", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadLogs hung", p)
		}
	}
}

// A log truncated in place while followed is read again from its start.
func TestReadLogsFollowsTruncation(t *testing.T) {
	defer func(d time.Duration) { FollowPollInterval = d }(FollowPollInterval)
	FollowPollInterval = 5 * time.Millisecond
	path := writeLog(t, "2026-01-02T03:04:05Z stdout F before truncation\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() { done <- ReadLogs(ctx, path, &LogOptions{Follow: true}, &out, nil, nil) }()
	time.Sleep(30 * time.Millisecond)
	if err := os.WriteFile(path, []byte("2026-01-02T03:04:06Z stdout F x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "before truncation\nx\n"
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
}

// An ended context stops a read that is not a follow, with its error.
func TestReadLogsStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if err := ReadLogs(ctx, writeLog(t, sampleLog), nil, &out, &out, nil); !errors.Is(err, context.Canceled) || out.Len() != 0 {
		t.Fatalf("got %v and %q, want context.Canceled and nothing", err, out.String())
	}
}

func TestParseEntry(t *testing.T) {
	ts, stream, partial, content, ok := ParseEntry([]byte("2026-01-02T03:04:05.5Z stderr F:x hello world"))
	if !ok || stream != Stderr || partial || string(content) != "hello world" || ts.Nanosecond() != 5e8 {
		t.Errorf("got %v %v %v %q %v", ts, stream, partial, content, ok)
	}
	for _, bad := range []string{"", "x stdout F a", "2026-01-02T03:04:05Z stdin F a", "2026-01-02T03:04:05Z stdout X a", "2026-01-02T03:04:05Z stdout F"} {
		if _, _, _, _, ok := ParseEntry([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzReadLogs(f *testing.F) {
	f.Add([]byte(sampleLog), int64(2), int64(10), true)
	f.Add([]byte("2026-01-02T03:04:05Z stdout P a\n2026-01-02T03:04:05Z stdout P b"), int64(-1), int64(-1), false)
	f.Add([]byte("\n\n  \x00 stdout F\n"), int64(0), int64(1), true)
	f.Fuzz(func(t *testing.T, data []byte, tail, limit int64, timestamps bool) {
		path := filepath.Join(t.TempDir(), "0.log")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		opts := &LogOptions{Timestamps: timestamps}
		if tail >= 0 {
			opts.TailLines = &tail
		}
		if limit > 0 {
			opts.LimitBytes = &limit
		}
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ReadLogs(ctx, path, opts, &out, &errOut, nil); err != nil {
			t.Fatalf("ReadLogs: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatal("ReadLogs hung")
		}
		if limit > 0 && int64(out.Len()+errOut.Len()) > limit {
			t.Fatalf("wrote %d bytes over the limit %d", out.Len()+errOut.Len(), limit)
		}
		if !timestamps && out.Len()+errOut.Len() > len(data) {
			t.Fatalf("wrote %d bytes from a %d byte file", out.Len()+errOut.Len(), len(data))
		}
	})
}

// lockedBuffer is a bytes.Buffer written by one goroutine and read by another.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
