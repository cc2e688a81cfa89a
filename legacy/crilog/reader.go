package crilog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrInvalidOptions is the error of LogOptions out of their range.
var ErrInvalidOptions = errors.New("invalid log options")

// LogOptions select what ReadLogs writes, as the kubelet's v1.PodLogOptions do.
type LogOptions struct {
	// TailLines, when set, keeps only that many lines from the end of the log (0: none; with
	// Follow, only what is written from now on).
	TailLines *int64
	// LimitBytes, when set, stops the output after that many bytes (timestamps included); the
	// last line may be cut.
	LimitBytes *int64
	// SinceTime, when not zero, drops the lines logged before it.
	SinceTime time.Time
	// Timestamps prefixes each line with its RFC3339Nano timestamp and a space.
	Timestamps bool
	// Follow keeps reading what the container writes until ctx ends or the container exits.
	Follow bool
}

// MaxReadLineSize bounds a line ReadLogs holds in memory: a longer file line is dropped, a longer
// line joined from partial entries is written out in pieces of at most this size.
const MaxReadLineSize = 16 << 20

// FollowPollInterval is how often a followed log file is read again once its end was reached.
var FollowPollInterval = 250 * time.Millisecond

// ReadLogs writes the log lines of the CRI log file at path to stdout and stderr (a nil writer
// drops its stream) by opts: partial entries are joined into their line, malformed file lines
// skipped. With opts.Follow it then waits for more until ctx ends or running (nil: always) says
// the container stopped (an ended ctx is then no error; without Follow it stops the read with its
// error); a log rotated away or truncated in place is followed into what is at path. Reaching
// LimitBytes ends it without error. Options out of range are ErrInvalidOptions, a missing file
// fs.ErrNotExist, a path that is not a regular file ErrNotRegular.
func ReadLogs(ctx context.Context, path string, opts *LogOptions, stdout, stderr io.Writer, running func() bool) error {
	if opts == nil {
		opts = &LogOptions{}
	}
	if opts.TailLines != nil && *opts.TailLines < 0 {
		return fmt.Errorf("%w: tail lines %d must not be negative", ErrInvalidOptions, *opts.TailLines)
	}
	if opts.LimitBytes != nil && *opts.LimitBytes < 1 {
		return fmt.Errorf("%w: limit bytes %d must be positive", ErrInvalidOptions, *opts.LimitBytes)
	}
	f, err := openForRead(path)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()

	out := &lineWriter{ctx: ctx, stdout: stdout, stderr: stderr, timestamps: opts.Timestamps, since: opts.SinceTime, remain: -1}
	if opts.LimitBytes != nil {
		out.remain = *opts.LimitBytes
	}
	if opts.TailLines != nil {
		keep, end, err := tailStarts(f, *opts.TailLines)
		if err != nil {
			return err
		}
		out.keep = func(start int64) bool { _, ok := keep[start]; return ok || start >= end }
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}

	// end is the error a read ends with: none for the byte limit, nor for the end of a follow.
	end := func(err error) error {
		if errors.Is(err, errLimit) || (opts.Follow && ctx.Err() != nil) {
			return nil
		}
		return err
	}
	s := newScanner(f, 0)
	for {
		if err := s.scan(out.line, !opts.Follow); err != nil {
			return end(err)
		}
		if !opts.Follow {
			return nil
		}
		if running != nil && !running() {
			// The container stopped: what it wrote last is in the file now.
			return end(s.scan(out.line, true))
		}
		if truncated(f, s.offset) {
			// Truncated in place (copytruncate): read it again from its start.
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			s = newScanner(f, 0)
			out.keep = nil
			continue
		}
		if nf := reopenIfRotated(f, path); nf != nil {
			// The rest of the old file is read; the new one is read from its start.
			err := s.scan(out.line, true)
			f.Close()
			f = nf
			if err != nil {
				return end(err)
			}
			s = newScanner(f, 0)
			out.keep = nil
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(FollowPollInterval):
		}
	}
}

// openForRead opens the regular file at path for reading. A symlink, FIFO or device is
// ErrNotRegular: a log directory a container can write to must not make the reader block on a
// FIFO or read another file of the host.
func openForRead(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("%w: %s is a symlink", ErrNotRegular, path)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if err := checkRegular(st.Mode, path); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return logFile(fd, path)
}

// truncated tells whether f is shorter than what was read of it.
func truncated(f *os.File, offset int64) bool {
	fi, err := f.Stat()
	return err == nil && fi.Size() < offset
}

// reopenIfRotated opens path when it is no longer the file f (the log was rotated), else nil.
func reopenIfRotated(f *os.File, path string) *os.File {
	cur, err := f.Stat()
	if err != nil {
		return nil
	}
	now, err := os.Lstat(path)
	if err != nil || os.SameFile(cur, now) {
		return nil
	}
	nf, err := openForRead(path)
	if err != nil {
		return nil
	}
	return nf
}

// tailStarts reads f to its end and returns the start offsets of its last n lines, and the offset
// where the read ended (lines starting there or later came after and are kept too).
func tailStarts(f *os.File, n int64) (map[int64]struct{}, int64, error) {
	var ring []int64
	next := 0
	s := newScanner(f, 0)
	err := s.scan(func(l line) error {
		if !l.last || n == 0 {
			return nil
		}
		if int64(len(ring)) < n {
			ring = append(ring, l.start)
			return nil
		}
		ring[next] = l.start
		next = (next + 1) % len(ring)
		return nil
	}, true)
	if err != nil {
		return nil, 0, err
	}
	keep := make(map[int64]struct{}, len(ring))
	for _, o := range ring {
		keep[o] = struct{}{}
	}
	return keep, s.offset, nil
}

// line is a piece of a log line as the scanner hands it out: a whole line, or (for a joined line
// longer than MaxReadLineSize) one of its pieces.
type line struct {
	// start is the file offset of the line's first entry: it names the line.
	start  int64
	ts     time.Time
	stream Stream
	data   []byte
	// first and last tell whether the piece begins and ends the line; newline whether the line
	// ended with one (a line cut by the end of the output did not).
	first, last, newline bool
}

// pending is a line of a stream whose partial entries are being joined.
type pending struct {
	start   int64
	ts      time.Time
	buf     []byte
	flushed bool
}

// scanner reads CRI log entries from a file and joins the partial ones per stream.
type scanner struct {
	r *bufio.Reader
	// offset is the file offset of the next byte the scanner has not consumed.
	offset int64
	// carry holds an entry read up to the end of the file without its newline yet.
	carry []byte
	// skipping is set while the rest of an overlong file line is dropped.
	skipping bool
	open     map[Stream]*pending
}

func newScanner(f io.Reader, offset int64) *scanner {
	return &scanner{r: bufio.NewReaderSize(f, 64<<10), offset: offset, open: map[Stream]*pending{}}
}

// scan hands every line of the file up to its end to emit. At the end, an entry without its
// newline is taken as it is when final (nothing more will be written), else kept for the next
// scan. An error of emit ends the scan.
func (s *scanner) scan(emit func(line) error, final bool) error {
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(chunk) > 0 && !s.skipping {
			if len(s.carry)+len(chunk) > MaxReadLineSize+1 {
				s.carry, s.skipping = s.carry[:0], true
			} else {
				s.carry = append(s.carry, chunk...)
			}
		}
		s.offset += int64(len(chunk))
		switch {
		case err == nil:
			if s.skipping {
				s.skipping = false
				continue
			}
			entry := s.carry[:len(s.carry)-1]
			start := s.offset - int64(len(s.carry))
			s.carry = s.carry[:0]
			if err := s.entry(start, entry, emit); err != nil {
				return err
			}
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if !final {
				return nil
			}
			if len(s.carry) > 0 && !s.skipping {
				entry := s.carry
				start := s.offset - int64(len(s.carry))
				s.carry = s.carry[:0]
				if err := s.entry(start, entry, emit); err != nil {
					return err
				}
			}
			return s.flushOpen(emit)
		default:
			return err
		}
	}
}

// entry parses one file line and joins it into its stream's line; a malformed one is dropped.
func (s *scanner) entry(start int64, raw []byte, emit func(line) error) error {
	ts, stream, partial, content, ok := ParseEntry(raw)
	if !ok {
		return nil
	}
	p := s.open[stream]
	if p == nil {
		p = &pending{start: start, ts: ts}
		s.open[stream] = p
	}
	if len(p.buf)+len(content) > MaxReadLineSize {
		if err := emit(line{start: p.start, ts: p.ts, stream: stream, data: p.buf, first: !p.flushed}); err != nil {
			return err
		}
		p.buf, p.flushed = p.buf[:0], true
	}
	p.buf = append(p.buf, content...)
	if partial {
		return nil
	}
	delete(s.open, stream)
	return emit(line{start: p.start, ts: p.ts, stream: stream, data: p.buf, first: !p.flushed, last: true, newline: true})
}

// flushOpen hands out the lines whose last entry was partial, as they are (without a newline): the
// output ended there.
func (s *scanner) flushOpen(emit func(line) error) error {
	for len(s.open) > 0 {
		var first Stream
		for st, p := range s.open {
			if first == "" || p.start < s.open[first].start {
				first = st
			}
		}
		p := s.open[first]
		delete(s.open, first)
		if err := emit(line{start: p.start, ts: p.ts, stream: first, data: p.buf, first: !p.flushed, last: true}); err != nil {
			return err
		}
	}
	return nil
}

// ParseEntry splits a CRI log file line "<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <content>".
func ParseEntry(raw []byte) (ts time.Time, stream Stream, partial bool, content []byte, ok bool) {
	field := func() ([]byte, bool) {
		i := bytes.IndexByte(raw, ' ')
		if i < 0 {
			return nil, false
		}
		f := raw[:i]
		raw = raw[i+1:]
		return f, true
	}
	tsField, ok1 := field()
	streamField, ok2 := field()
	tagField, ok3 := field()
	if !ok1 || !ok2 || !ok3 {
		return time.Time{}, "", false, nil, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(tsField))
	if err != nil {
		return time.Time{}, "", false, nil, false
	}
	switch Stream(streamField) {
	case Stdout, Stderr:
		stream = Stream(streamField)
	default:
		return time.Time{}, "", false, nil, false
	}
	if i := bytes.IndexByte(tagField, ':'); i >= 0 {
		tagField = tagField[:i]
	}
	switch string(tagField) {
	case TagPartial:
		partial = true
	case TagFull:
	default:
		return time.Time{}, "", false, nil, false
	}
	return ts, stream, partial, raw, true
}

// errLimit ends a read that wrote LimitBytes.
var errLimit = errors.New("log byte limit reached")

// lineWriter writes the lines that pass the options to their stream's writer.
type lineWriter struct {
	// ctx ends the read: its error stops the scan at the next line.
	ctx            context.Context
	stdout, stderr io.Writer
	timestamps     bool
	since          time.Time
	// keep, when set, tells whether the line starting at that offset is kept (tail).
	keep func(start int64) bool
	// remain is the bytes still allowed; negative: no limit.
	remain int64
	// skip is set for the rest of a line the options drop.
	skip bool
	buf  []byte
}

func (w *lineWriter) line(l line) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if l.first {
		w.skip = (w.keep != nil && !w.keep(l.start)) || (!w.since.IsZero() && l.ts.Before(w.since))
	}
	if w.skip {
		return nil
	}
	dst := w.stdout
	if l.stream == Stderr {
		dst = w.stderr
	}
	if dst == nil {
		return nil
	}
	b := w.buf[:0]
	if l.first && w.timestamps {
		b = l.ts.AppendFormat(b, time.RFC3339Nano)
		b = append(b, ' ')
	}
	b = append(b, l.data...)
	if l.newline {
		b = append(b, '\n')
	}
	w.buf = b[:0]
	if w.remain >= 0 && int64(len(b)) >= w.remain {
		_, err := dst.Write(b[:w.remain])
		if err != nil {
			return err
		}
		return errLimit
	}
	if w.remain >= 0 {
		w.remain -= int64(len(b))
	}
	_, err := dst.Write(b)
	return err
}
