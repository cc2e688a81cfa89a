package crilog

import (
	"bytes"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// chunkSize is the size of the buffers entries are queued in: an entry of the default maximum
// line size fits in one. Entries are formatted into the queue's last chunk when they fit there
// (no buffer grows, nothing is copied again), and the chunks are written with one writev.
const chunkSize = 32 << 10

// freeChunks holds the chunks of written entries for the next to queue, for all writers (a
// channel rather than a sync.Pool: putting a slice in a Pool allocates). An idle writer keeps
// none, and at most 4 MiB are kept here.
var freeChunks = make(chan []byte, 128)

func getChunk(n int) []byte {
	if n > chunkSize {
		return make([]byte, 0, n) // an entry longer than a chunk (a large maximum line size)
	}
	select {
	case c := <-freeChunks:
		return c
	default:
		return make([]byte, 0, chunkSize)
	}
}

func putChunk(c []byte) {
	if cap(c) != chunkSize {
		return
	}
	select {
	case freeChunks <- c[:0]:
	default:
	}
}

// queue is entries waiting to be written, in chunks.
type queue struct {
	chunks  [][]byte
	size    int // bytes
	entries int
}

// room returns the last chunk when n more bytes fit in it, else a new one (appended).
func (q *queue) room(n int) []byte {
	if k := len(q.chunks); k > 0 {
		if c := q.chunks[k-1]; cap(c)-len(c) >= n {
			return c
		}
	}
	q.chunks = append(q.chunks, getChunk(n))
	return q.chunks[len(q.chunks)-1]
}

// entry queues the entry of stream with tag and the concatenated parts, timestamped by w.
func (q *queue) entry(w *Writer, stream Stream, tag string, parts ...[]byte) {
	n := entrySize(stream, tag, parts)
	c := w.appendEntry(q.room(n), stream, tag, parts...)
	q.chunks[len(q.chunks)-1] = c
	q.size += n
	q.entries++
}

// add queues whole entries (formatted already).
func (q *queue) add(p []byte) {
	q.size += len(p)
	q.entries += bytes.Count(p, []byte{'\n'})
	for len(p) > 0 {
		c := q.room(1)
		k := min(len(p), cap(c)-len(c))
		q.chunks[len(q.chunks)-1] = append(c, p[:k]...)
		p = p[k:]
	}
}

// release gives the chunks back and empties q (keeping its list for reuse).
func (q *queue) release() {
	for i, c := range q.chunks {
		putChunk(c)
		q.chunks[i] = nil
	}
	q.chunks = q.chunks[:0]
	q.size, q.entries = 0, 0
}

// maxIovecs bounds the chunks of one writev (the kernel's IOV_MAX).
const maxIovecs = 1024

// writeChunks writes chunks to f with writev (all of them, in as many calls as it takes). iov is
// the caller's scratch space. The file's descriptor is used through its RawConn, which holds it
// for the call.
func writeChunks(f *os.File, chunks [][]byte, iov *[]unix.Iovec) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	defer clear(*iov) // no chunk kept alive by the scratch space
	v := vectorWrite{chunks: chunks, iov: iov}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		werr = v.write(int(fd))
		// A file in non-blocking mode (not a log file: they are regular, but a test's FIFO)
		// is waited for by the runtime's poller.
		return werr != unix.EAGAIN
	})
	if werr != nil {
		return &os.PathError{Op: "write", Path: f.Name(), Err: werr}
	}
	return err
}

// vectorWrite is a writev of chunks, resumed where it stopped.
type vectorWrite struct {
	chunks [][]byte
	i, off int // the first chunk, and offset in it, not written yet
	iov    *[]unix.Iovec
}

func (v *vectorWrite) write(fd int) error {
	for v.i < len(v.chunks) {
		iov := (*v.iov)[:0]
		for j := v.i; j < len(v.chunks) && len(iov) < maxIovecs; j++ {
			c := v.chunks[j]
			if j == v.i {
				c = c[v.off:]
			}
			if len(c) == 0 {
				continue
			}
			vec := unix.Iovec{Base: &c[0]}
			vec.SetLen(len(c))
			iov = append(iov, vec)
		}
		*v.iov = iov
		if len(iov) == 0 {
			return nil
		}
		r, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		if r == 0 {
			return unix.EIO // nothing written and no error: do not loop
		}
		for n := int(r); n > 0 && v.i < len(v.chunks); {
			rest := len(v.chunks[v.i]) - v.off
			if n < rest {
				v.off += n
				break
			}
			n -= rest
			v.i, v.off = v.i+1, 0
		}
	}
	return nil
}
