package crilog

import (
	"bytes"
	"errors"
)

// LineWriter turns one stream's output, pushed to it in chunks of any size, into entries of the
// Writer, as Copy does for output it reads itself: a line per F entry (without its "\n" or
// "\r\n"), lines longer than the maximum split into P entries, and what is left without a newline
// at Close as a P entry. The entries of one Write are queued together, and written with one write
// (with whatever else is queued). It keeps
// no buffer between Writes except the start of a line still without its newline (so that a
// daemon reading many containers' output from one goroutine holds no read buffer per stream).
//
// A LineWriter is not safe for concurrent use (one stream has one reader).
type LineWriter struct {
	w        *Writer
	stream   Stream
	pending  []byte // the line begun and not ended yet (at most maxLine bytes, plus a '\r')
	firstErr error
}

// NewLineWriter returns the LineWriter of stream into w.
func (w *Writer) NewLineWriter(stream Stream) *LineWriter {
	return &LineWriter{w: w, stream: stream}
}

// Write writes the entries of the lines p completes. Write errors are kept (the first is returned
// by Close); the output is consumed anyway, as it must keep draining. The entries are queued
// (Writer): Write does not wait for the file, so a caller with many containers' output (the
// daemon's output pump) is not held up by one log whose writes block; it is to stop giving output
// while Backlog says so.
func (l *LineWriter) Write(p []byte) (int, error) {
	n := len(p)
	if err := l.w.enqueue(func(q *queue) { l.queueLines(q, p) }); err != nil && l.firstErr == nil {
		l.firstErr = err
	}
	return n, nil
}

// queueLines queues the entries of the lines p completes, and keeps the start of a line without
// its newline yet.
func (l *LineWriter) queueLines(q *queue, p []byte) {
	maxLine := l.w.maxLine
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.pending = append(l.pending, p...)
			l.splitPending(q)
			return
		}
		line := p[:i]
		p = p[i+1:]
		if len(l.pending) > 0 {
			l.pending = append(l.pending, line...)
			line = l.pending
		}
		if k := len(line); k > 0 && line[k-1] == '\r' {
			line = line[:k-1]
		}
		for len(line) > maxLine {
			q.entry(l.w, l.stream, TagPartial, line[:maxLine])
			line = line[maxLine:]
		}
		q.entry(l.w, l.stream, TagFull, line)
		l.pending = nil // do not keep a line buffer for a stream that ends its lines
	}
}

// splitPending writes the part of a line without its newline yet that exceeds the maximum line
// size as P entries (a trailing '\r' is kept: it may be half of "\r\n").
func (l *LineWriter) splitPending(q *queue) {
	maxLine := l.w.maxLine
	for {
		k := len(l.pending)
		if k > 0 && l.pending[k-1] == '\r' {
			k--
		}
		if k <= maxLine {
			return
		}
		q.entry(l.w, l.stream, TagPartial, l.pending[:maxLine])
		l.pending = append(l.pending[:0], l.pending[maxLine:]...)
	}
}

// Close writes what is left without a newline as a P entry and returns the first write error
// (ErrClosed when the Writer was closed before).
func (l *LineWriter) Close() error {
	if len(l.pending) > 0 {
		pending := l.pending
		l.pending = nil
		if err := l.w.enqueue(func(q *queue) { q.entry(l.w, l.stream, TagPartial, pending) }); err != nil && l.firstErr == nil {
			l.firstErr = err
		}
	}
	return l.firstErr
}

// IsClosed tells whether err is (or wraps) ErrClosed.
func IsClosed(err error) bool { return errors.Is(err, ErrClosed) }
