// Package crilog writes container output in the CRI log format the kubelet reads:
//
//	<RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>\n
//
// One file takes both streams of a container. A line longer than the maximum line size is split
// into parts tagged P (partial) with the last part tagged F (full); output that ends without a
// newline when its stream closes is written as a P entry. The file can be reopened after the kubelet
// rotated it (ReopenContainerLog). ReadLogs reads such a file back by the kubelet's log options.
package crilog

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
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

// Writing is done by a goroutine of the Writer's, started when there is something to write and
// gone when all is written, so that a log file whose writes block (a hung volume) holds up none of
// the callers: the daemon's one output pump goroutine writes every container's output into its
// log, and a write blocking it stalled all containers. What waits to be written is bounded: above
// backlogHigh, Backlog tells the caller to stop reading the container's output until it is below
// backlogLow again (the container then blocks on its stdout, as with a slow log under any
// runtime); what exceeds backlogMax (a caller not heeding Backlog) is dropped and counted.
const (
	backlogHigh = 256 << 10
	backlogLow  = 64 << 10
	backlogMax  = 1 << 20
)

// closeFlushTimeout bounds the wait of Close (and Reopen) for what waits to be written: a file
// whose writes hang does not hold up the exit of its container (nor the log's rotation) longer.
var closeFlushTimeout = 2 * time.Second

// Writer is one container's log file. It is safe for concurrent use: every batch of entries is
// queued whole under the writer's lock and written with one write, so entries of the two streams
// never interleave.
type Writer struct {
	path    string
	dir     string // when set, path must stay inside it (InDir)
	maxLine int
	now     func() time.Time

	mu     sync.Mutex
	f      *os.File
	closed bool
	// queue is what waits to be written; inflight is the size of what the flusher writes now.
	queue    queue
	inflight int
	spare    queue // the flusher's, written last (its chunk list is reused)
	flushing bool  // the flusher goroutine runs
	idle     chan struct{}
	drained  chan struct{} // handed out by Backlog; closed below backlogLow, or by Close
	err      error         // the first write error
	dropped  uint64        // entries dropped above backlogMax
	// retired is the files replaced (Reopen) or closed (Close) while the flusher ran: it closes
	// them after its write, which may be on one of them.
	retired []*os.File

	iov []unix.Iovec // the flusher's scratch space
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

// Open opens (creating it and its directory when needed) the log file at path for appending. A
// path that is not a regular file (a FIFO, a device, a symlink) is refused with ErrNotRegular,
// without waiting.
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

// Path returns the log file's path.
func (w *Writer) Path() string { return w.path }

// MaxLineSize returns the size at which lines are split.
func (w *Writer) MaxLineSize() int { return w.maxLine }

// Reopen opens path again (it was renamed away by log rotation) and writes there from then on;
// what was written before goes to the old file (waited for up to closeFlushTimeout). When the
// open fails (ErrNotRegular: something planted at the path), the writer keeps its file.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	// Opened without the lock: an open that blocks (a hung volume) holds up no writer.
	f, err := w.open()
	if err != nil {
		return err
	}
	w.waitIdle(closeFlushTimeout)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		f.Close()
		return ErrClosed
	}
	old := w.f
	w.f = f
	if w.flushing {
		w.retired = append(w.retired, old)
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	return old.Close()
}

// Close writes what waits to be written (waiting up to closeFlushTimeout; what is left then is
// dropped) and closes the file; later writes fail with ErrClosed. It returns the first write
// error, if any.
func (w *Writer) Close() error {
	w.waitIdle(closeFlushTimeout)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.dropped += uint64(w.queue.entries)
	w.queue.release()
	if w.drained != nil {
		close(w.drained)
		w.drained = nil
	}
	err := w.err
	if w.flushing {
		// A write that hangs: the file is closed when it returns.
		w.retired = append(w.retired, w.f)
		w.mu.Unlock()
		return err
	}
	f := w.f
	w.mu.Unlock()
	return errors.Join(err, f.Close())
}

// Flush waits until what was written so far is in the file (or the writer is closed), and
// returns the first write error.
func (w *Writer) Flush() error {
	w.waitIdle(-1)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Backlog returns nil while the file keeps up. When more than backlogHigh bytes wait to be
// written, it returns a channel closed once less than backlogLow do (or the writer is closed):
// until then, the caller should give it no more.
func (w *Writer) Backlog() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.queue.size+w.inflight <= backlogHigh {
		return nil
	}
	if w.drained == nil {
		w.drained = make(chan struct{})
	}
	return w.drained
}

// Dropped returns the number of entries dropped because too much waited to be written (see
// Backlog) or was left when the writer was closed.
func (w *Writer) Dropped() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// waitIdle waits until the flusher has written everything (d < 0: without bound) or d passed.
func (w *Writer) waitIdle(d time.Duration) {
	w.mu.Lock()
	if !w.flushing {
		w.mu.Unlock()
		return
	}
	if w.idle == nil {
		w.idle = make(chan struct{})
	}
	idle := w.idle
	w.mu.Unlock()
	if d < 0 {
		<-idle
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

// enqueue queues entries with add, and starts the flusher when it does not run. Above
// backlogMax, the entries are dropped.
func (w *Writer) enqueue(add func(*queue)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.queue.size+w.inflight >= backlogMax {
		var q queue
		add(&q)
		w.dropped += uint64(q.entries)
		q.release()
		return w.err
	}
	add(&w.queue)
	if w.queue.size > 0 && !w.flushing {
		w.flushing = true
		go w.flush()
	}
	return w.err
}

// flush writes the queue until it is empty, one writev per round, without the lock.
func (w *Writer) flush() {
	w.mu.Lock()
	for !w.closed && w.queue.size > 0 {
		q, f := w.queue, w.f
		w.queue, w.spare = w.spare, queue{}
		w.inflight = q.size
		w.mu.Unlock()
		err := writeChunks(f, q.chunks, &w.iov)
		q.release()
		w.mu.Lock()
		w.spare = q
		w.inflight = 0
		if err != nil && w.err == nil && !w.closed {
			w.err = err
		}
		if w.drained != nil && w.queue.size < backlogLow {
			close(w.drained)
			w.drained = nil
		}
		if len(w.retired) > 0 {
			w.closeRetiredLocked()
		}
	}
	// Idle: no chunk is kept (most containers are quiet most of the time).
	w.spare = queue{}
	w.iov = nil
	retired := w.retired
	w.retired = nil
	w.flushing = false
	if w.idle != nil {
		close(w.idle)
		w.idle = nil
	}
	w.mu.Unlock()
	for _, f := range retired {
		f.Close()
	}
}

// closeRetiredLocked closes the retired files, without the lock (the caller holds it).
func (w *Writer) closeRetiredLocked() {
	retired := w.retired
	w.retired = nil
	w.mu.Unlock()
	for _, f := range retired {
		f.Close()
	}
	w.mu.Lock()
}

// WriteEntry writes one entry of stream with tag and content (which must not hold a newline). It
// is queued: written by the writer's goroutine (Flush waits for it).
func (w *Writer) WriteEntry(stream Stream, tag string, content []byte) error {
	return w.enqueue(func(q *queue) { q.entry(w, stream, tag, content) })
}

// entrySize is the size of an entry of stream with tag and the concatenated parts.
func entrySize(stream Stream, tag string, parts [][]byte) int {
	n := len(TimestampFormat) + len(stream) + len(tag) + 4
	for _, p := range parts {
		n += len(p)
	}
	return n
}

// appendEntry appends the entry of stream with tag and the concatenated parts to buf.
func (w *Writer) appendEntry(buf []byte, stream Stream, tag string, parts ...[]byte) []byte {
	buf = slices.Grow(buf, entrySize(stream, tag, parts))
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

// write queues whole entries, written together.
func (w *Writer) write(entries []byte) error {
	return w.enqueue(func(q *queue) { q.add(entries) })
}

// maxBatch bounds the entries Copy gathers before writing them.
const maxBatch = 64 << 10

// Copy reads stream's output from r until EOF (or an error) and writes it as entries: a line per
// F entry (without its "\n" or "\r\n"), lines longer than the maximum split into P entries, and
// what is left without a newline at the end as a P entry. The entries of what one read returned
// are written together, with one write, before the next read waits for more output (so nothing
// is held back while the container is quiet); while the file does not keep up (Backlog), the next
// read waits. Write errors do not stop the copy (the container's output must keep draining); the
// first one is returned at the end, once all is written.
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
		if wait := w.Backlog(); wait != nil {
			<-wait
		}
	}
	end := func() error {
		if err := w.Flush(); err != nil && firstErr == nil {
			firstErr = err
		}
		return firstErr
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
				if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) && firstErr == nil {
					firstErr = err
				}
				return end()
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
