package crilog

import (
	"bytes"
	"errors"
	"sync"
)

// LineWriter turns one stream's output, pushed to it in chunks of any size, into entries of the
// Writer, as Copy does for output it reads itself: a line per F entry (without its "\n" or
// "\r\n"), lines longer than the maximum split into P entries, and what is left without a newline
// at Close as a P entry. The entries of one Write are written together, with one write. It keeps
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

// batchPool holds the buffers in which a Write gathers its entries.
var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Write writes the entries of the lines p completes. Write errors are kept (the first is returned
// by Close); the output is consumed anyway, as it must keep draining.
func (l *LineWriter) Write(p []byte) (int, error) {
	n := len(p)
	bp := batchPool.Get().(*[]byte)
	batch := (*bp)[:0]
	maxLine := l.w.maxLine
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.pending = append(l.pending, p...)
			batch = l.splitPending(batch)
			break
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
			batch = l.w.appendEntry(batch, l.stream, TagPartial, line[:maxLine])
			line = line[maxLine:]
		}
		batch = l.w.appendEntry(batch, l.stream, TagFull, line)
		l.pending = nil // do not keep a line buffer for a stream that ends its lines
	}
	l.flush(batch)
	if cap(batch) <= maxBatch {
		*bp = batch[:0]
		batchPool.Put(bp)
	}
	return n, nil
}

// splitPending writes the part of a line without its newline yet that exceeds the maximum line
// size as P entries (a trailing '\r' is kept: it may be half of "\r\n").
func (l *LineWriter) splitPending(batch []byte) []byte {
	maxLine := l.w.maxLine
	for {
		k := len(l.pending)
		if k > 0 && l.pending[k-1] == '\r' {
			k--
		}
		if k <= maxLine {
			return batch
		}
		batch = l.w.appendEntry(batch, l.stream, TagPartial, l.pending[:maxLine])
		l.pending = append(l.pending[:0], l.pending[maxLine:]...)
	}
}

func (l *LineWriter) flush(batch []byte) {
	if len(batch) == 0 {
		return
	}
	if err := l.w.write(batch); err != nil && l.firstErr == nil {
		l.firstErr = err
	}
}

// Close writes what is left without a newline as a P entry and returns the first write error
// (ErrClosed when the Writer was closed before).
func (l *LineWriter) Close() error {
	if len(l.pending) > 0 {
		l.flush(l.w.appendEntry(nil, l.stream, TagPartial, l.pending))
		l.pending = nil
	}
	return l.firstErr
}

// IsClosed tells whether err is (or wraps) ErrClosed.
func IsClosed(err error) bool { return errors.Is(err, ErrClosed) }
