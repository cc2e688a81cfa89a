// Package crilog writes container output in the CRI log format the kubelet reads:
//
//	<RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>\n
//
// One file takes both streams of a container. A line longer than the maximum line size is split
// into parts tagged P (partial) with the last part tagged F (full); output that ends without a
// newline when its stream closes is written as a P entry. The file can be reopened after the kubelet
// rotated it (ReopenContainerLog).
package crilog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Stream names a container output stream.
type Stream string

const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

// Tags of a log entry.
const (
	TagPartial = "P"
	TagFull    = "F"
)

// TimestampFormat is the format of an entry's timestamp (RFC3339Nano with a fixed number of
// digits, so that entries sort as text).
const TimestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// DefaultMaxLineSize is the default size at which a line is split (16 KiB, as containerd).
const DefaultMaxLineSize = 16 * 1024

// readBufSize is the read buffer of a stream copier: small, since every running container has
// two copiers blocked in a read most of the time (32 KiB made 29 MB of 500 containers' heap).
const readBufSize = 4 * 1024

// ErrClosed is returned by a Writer used after Close.
var ErrClosed = errors.New("crilog: writer closed")

// Writer is one container's log file. It is safe for concurrent use: every entry is written with
// one write under the writer's lock, so entries of the two streams never interleave.
type Writer struct {
	path    string
	dir     string // when set, path must stay inside it (InDir)
	maxLine int
	now     func() time.Time

	mu     sync.Mutex
	f      *os.File
	closed bool
}

// Option configures a Writer.
type Option func(*Writer)

// WithMaxLineSize sets the size at which lines are split; <= 0 means DefaultMaxLineSize.
func WithMaxLineSize(n int) Option {
	return func(w *Writer) {
		if n > 0 {
			w.maxLine = n
		}
	}
}

// InDir confines the log file to dir (the sandbox's log directory): the path is opened relative
// to dir through an os.Root, so neither `..` nor a symlink inside dir can make the writer create
// or append to a file outside it (a container with its log dir mounted could otherwise plant
// such a symlink). dir itself may be a symlink, as the kubelet chooses it.
func InDir(dir string) Option { return func(w *Writer) { w.dir = dir } }

// WithClock sets the clock of the timestamps (for tests).
func WithClock(now func() time.Time) Option { return func(w *Writer) { w.now = now } }

// Open opens (creating it and its directory when needed) the log file at path for appending.
func Open(path string, opts ...Option) (*Writer, error) {
	w := &Writer{path: path, maxLine: DefaultMaxLineSize, now: time.Now}
	for _, o := range opts {
		o(w)
	}
	f, err := w.open()
	if err != nil {
		return nil, err
	}
	w.f = f
	return w, nil
}

// ErrEscapes is returned when a log path leads out of its log directory.
var ErrEscapes = errors.New("crilog: log path escapes the log directory")

func (w *Writer) open() (*os.File, error) {
	if w.dir == "" {
		return openFile(w.path)
	}
	rel, err := filepath.Rel(w.dir, w.path)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%w: %s is not inside %s", ErrEscapes, w.path, w.dir)
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, fmt.Errorf("crilog: create log dir: %w", err)
	}
	root, err := os.OpenRoot(w.dir)
	if err != nil {
		return nil, fmt.Errorf("crilog: open log dir: %w", err)
	}
	defer root.Close()
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return nil, confined(w.path, err)
		}
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, confined(w.path, err)
	}
	return f, nil
}

// confined reports an os.Root error, as ErrEscapes when the path left the root.
func confined(path string, err error) error {
	if strings.Contains(err.Error(), "escapes from parent") {
		return fmt.Errorf("%w: %s: %v", ErrEscapes, path, err)
	}
	return fmt.Errorf("crilog: open %s: %w", path, err)
}

// CheckInDir tells whether rel, relative to dir, stays inside dir as far as it exists now:
// no `..` out of it, no symlink on the way (nor the file itself) leading out of it.
func CheckInDir(dir, rel string) error {
	if !filepath.IsLocal(rel) {
		return fmt.Errorf("%w: %q", ErrEscapes, rel)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil // no log dir yet: nothing in it can lead out
	}
	defer root.Close()
	// Stat of each prefix follows symlinks inside the root and fails on one leading out.
	p := ""
	for _, part := range strings.Split(filepath.Clean(rel), string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if _, err := root.Stat(p); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // created inside dir when the log is opened
			}
			return confined(filepath.Join(dir, rel), err)
		}
	}
	return nil
}

func openFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("crilog: create log dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("crilog: open %s: %w", path, err)
	}
	return f, nil
}

// Path returns the log file's path.
func (w *Writer) Path() string { return w.path }

// MaxLineSize returns the size at which lines are split.
func (w *Writer) MaxLineSize() int { return w.maxLine }

// Reopen closes the file and opens path again (it was renamed away by log rotation). Entries
// written meanwhile wait for the lock and go to the new file.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	f, err := w.open()
	if err != nil {
		return err
	}
	old := w.f
	w.f = f
	return old.Close()
}

// Close closes the file; later writes fail with ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return w.f.Close()
}

// WriteEntry writes one entry of stream with tag and content (which must not hold a newline).
func (w *Writer) WriteEntry(stream Stream, tag string, content []byte) error {
	return w.write(w.appendEntry(nil, stream, tag, content))
}

// appendEntry appends the entry of stream with tag and the concatenated parts to buf.
func (w *Writer) appendEntry(buf []byte, stream Stream, tag string, parts ...[]byte) []byte {
	n := len(TimestampFormat) + len(stream) + len(tag) + 4
	for _, p := range parts {
		n += len(p)
	}
	buf = slices.Grow(buf, n)
	buf = w.now().AppendFormat(buf, TimestampFormat)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	buf = append(buf, ' ')
	buf = append(buf, tag...)
	buf = append(buf, ' ')
	for _, p := range parts {
		buf = append(buf, p...)
	}
	return append(buf, '\n')
}

// write writes whole entries with one write under the lock.
func (w *Writer) write(entries []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	_, err := w.f.Write(entries)
	return err
}

// maxBatch bounds the entries Copy gathers before writing them.
const maxBatch = 64 << 10

// Copy reads stream's output from r until EOF (or an error) and writes it as entries: a line per
// F entry (without its "\n" or "\r\n"), lines longer than the maximum split into P entries, and
// what is left without a newline at the end as a P entry. The entries of what one read returned
// are written together, with one write, before the next read waits for more output (so nothing
// is held back while the container is quiet). Write errors do not stop the copy (the container's
// output must keep draining); the first one is returned at the end.
func (w *Writer) Copy(stream Stream, r io.Reader) error {
	bufSize := readBufSize
	if w.maxLine < bufSize {
		bufSize = w.maxLine
	}
	if bufSize < 16 {
		bufSize = 16 // bufio's minimum
	}
	br := bufio.NewReaderSize(r, bufSize)
	var (
		parts    [][]byte
		length   int
		firstErr error
		batch    []byte
	)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := w.write(batch); err != nil && firstErr == nil {
			firstErr = err
		}
		if cap(batch) > maxBatch {
			batch = nil // do not keep a large buffer for a container that is quiet again
		} else {
			batch = batch[:0]
		}
	}
	emit := func(tag string) {
		batch = w.appendEntry(batch, stream, tag, parts...)
		parts, length = nil, 0
	}
	for {
		line, isPrefix, err := readLine(br)
		if err == nil && !isPrefix && len(parts) == 0 && len(line) <= w.maxLine {
			// The common case, a whole line in the read buffer: no copy of it.
			batch = w.appendEntry(batch, stream, TagFull, line)
		} else {
			if len(line) > 0 {
				parts = append(parts, bytes.Clone(line))
				length += len(line)
			}
			// Split what exceeds the maximum, as often as needed.
			for length > w.maxLine {
				excess := length - w.maxLine
				last := parts[len(parts)-1]
				parts[len(parts)-1] = last[:len(last)-excess]
				rest := last[len(last)-excess:]
				emit(TagPartial)
				parts, length = [][]byte{rest}, len(rest)
			}
			if err != nil {
				if length > 0 {
					emit(TagPartial)
				}
				flush()
				if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
					return firstErr
				}
				if firstErr == nil {
					firstErr = err
				}
				return firstErr
			}
			if !isPrefix {
				emit(TagFull)
			}
		}
		// Write what is gathered before a read that may block (no whole line is buffered), or
		// when it is large.
		if len(batch) >= maxBatch || !lineBuffered(br) {
			flush()
		}
	}
}

// lineBuffered tells whether b holds a newline already, so that the next readLine does not block.
func lineBuffered(b *bufio.Reader) bool {
	n := b.Buffered()
	if n == 0 {
		return false
	}
	buf, _ := b.Peek(n)
	return bytes.IndexByte(buf, '\n') >= 0
}

// readLine returns the next line without its "\n" or "\r\n"; isPrefix tells that the line goes on
// (the buffer was full). An error comes with the content read before it, which had no newline.
func readLine(b *bufio.Reader) (line []byte, isPrefix bool, err error) {
	line, err = b.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Keep a trailing '\r' for the next read: it may be half of "\r\n".
		if len(line) > 0 && line[len(line)-1] == '\r' {
			_ = b.UnreadByte()
			line = line[:len(line)-1]
		}
		return line, true, nil
	}
	if len(line) > 0 && line[len(line)-1] == '\n' {
		drop := 1
		if len(line) > 1 && line[len(line)-2] == '\r' {
			drop = 2
		}
		return line[:len(line)-drop], false, nil
	}
	return line, false, err
}
