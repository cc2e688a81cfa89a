package iopump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/fifo"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The output of all running containers is read by one goroutine (outputPump) waiting in epoll on
// the read ends of their stdout and stderr FIFOs, instead of a goroutine and a read buffer per
// stream: at 500 containers the per-stream goroutines and buffers were about a third of the
// daemon's memory.

// pumpReadSize is the read buffer of the pump, shared by all streams: a pipe's default capacity,
// so one read drains a FIFO.
const pumpReadSize = 64 << 10

// pumpReadsPerEvent bounds the reads of one stream per readiness event, so that a container
// writing without pause does not starve the others (epoll is level-triggered: the rest is read
// on the next round).
const pumpReadsPerEvent = 4

// outputPump reads the registered FIFOs with one goroutine.
type outputPump struct {
	once sync.Once
	epfd int
	err  error

	mu      sync.Mutex
	streams map[uint64]*pumpStream
	next    uint64
}

// pump is the daemon's output pump, started on first use.
var pump outputPump

// pumpStream is one registered FIFO. Reading it and closing it hold mu, so that its fd is never
// read after it was closed (and its number perhaps reused).
type pumpStream struct {
	id uint64
	// out gets what was read (the slice is reused after it returns). It must not block (one
	// goroutine reads all containers' output): when what it was given is not dealt with yet (a
	// log file that does not keep up), it returns a channel, and the stream is not read until
	// the channel is closed (its writer then blocks once the FIFO is full).
	out func([]byte) (wait <-chan struct{})
	end func() // called once, after the last out, when the stream ended or was closed

	mu     sync.Mutex
	fd     int  // -1 once closed
	paused bool // out its FIFO from the epoll set, until out's channel is closed
}

func (p *outputPump) start() error {
	p.once.Do(func() {
		p.epfd, p.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if p.err != nil {
			p.err = fmt.Errorf("epoll_create: %w", p.err)
			return
		}
		p.streams = map[uint64]*pumpStream{}
		go p.loop()
	})
	return p.err
}

// add registers fd, the non-blocking read end of a FIFO, which the pump owns from then on: out
// gets what is read from it, and end is called when it reaches EOF (every writer closed it after
// one had opened it) or is closed.
func (p *outputPump) add(fd int, out func([]byte) <-chan struct{}, end func()) (*pumpStream, error) {
	if err := p.start(); err != nil {
		return nil, err
	}
	s := &pumpStream{fd: fd, out: out, end: end}
	p.mu.Lock()
	p.next++
	s.id = p.next
	p.streams[s.id] = s
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(s.id)), Pad: int32(uint32(s.id >> 32))}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.streams, s.id)
		p.mu.Unlock()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return s, nil
}

func (p *outputPump) loop() {
	events := make([]unix.EpollEvent, 128)
	buf := make([]byte, pumpReadSize)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if !errors.Is(err, unix.EINTR) {
				logrus.WithError(err).Error("container output: epoll_wait")
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			p.mu.Lock()
			s := p.streams[id]
			p.mu.Unlock()
			if s != nil {
				p.service(s, buf)
			}
		}
	}
}

// service reads what stream s has.
func (p *outputPump) service(s *pumpStream, buf []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < pumpReadsPerEvent && s.fd >= 0; i++ {
		n, err := unix.Read(s.fd, buf)
		switch {
		case n > 0:
			if wait := s.out(buf[:n]); wait != nil {
				p.pauseLocked(s, wait)
				return
			}
			if n < len(buf) {
				return // drained; epoll tells when there is more (or EOF)
			}
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return
		default: // EOF, or an error
			if err != nil {
				logrus.WithError(err).Warn("container output: read")
			}
			p.closeLocked(s)
		}
	}
}

// pauseLocked stops reading s until wait is closed. Its FIFO leaves the epoll set (with no events
// asked for, epoll would still report the hang-up of its writers, again and again).
func (p *outputPump) pauseLocked(s *pumpStream, wait <-chan struct{}) {
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, s.fd, nil); err != nil {
		logrus.WithError(err).Warn("container output: pause: epoll_ctl")
		return // read on: better than never again
	}
	s.paused = true
	go func() {
		<-wait
		p.resume(s)
	}()
}

// resume reads s again after a pause.
func (p *outputPump) resume(s *pumpStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 || !s.paused {
		return
	}
	s.paused = false
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(s.id)), Pad: int32(uint32(s.id >> 32))}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
		// Never read again, its container would block: end it instead.
		logrus.WithError(err).Error("container output: resume: epoll_ctl")
		p.closeLocked(s)
	}
}

func (p *outputPump) closeLocked(s *pumpStream) {
	if s.fd < 0 {
		return
	}
	if !s.paused {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	}
	_ = unix.Close(s.fd)
	s.fd = -1
	p.mu.Lock()
	delete(p.streams, s.id)
	p.mu.Unlock()
	s.end()
}

// close stops reading s (what the FIFO still holds is dropped) and calls its end.
func (s *pumpStream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	pump.closeLocked(s)
}

// openFIFOReader creates (when missing) the FIFO at path and opens its read end without blocking.
// Until a writer opens it, epoll reports nothing on it (no EOF either).
func openFIFOReader(path string) (int, error) {
	if err := unix.Mkfifo(path, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create fifo %s: %w", path, err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return -1, fmt.Errorf("%s is not a fifo", path)
	}
	return fd, nil
}

// Pump is a container's stdio for containerd (cio.IO): the FIFOs, with the output read by the
// pump and the stdin FIFO (when the container has one) written by attach.
type Pump struct {
	fifos   *cio.FIFOSet
	Stdin   io.WriteCloser // nil without stdin
	streams []*pumpStream
	ended   sync.WaitGroup
}

// newPumpIO opens the container's FIFOs: the stdin one for writing (when it has stdin), the
// output ones for reading (not read until start).
func New(ctx context.Context, fifos *cio.FIFOSet) (_ *Pump, retErr error) {
	p := &Pump{fifos: fifos}
	defer func() {
		if retErr != nil {
			p.Close()
		}
	}()
	if fifos.Stdin != "" {
		f, err := fifo.OpenFifo(ctx, fifos.Stdin, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o700)
		if err != nil {
			return nil, fmt.Errorf("open stdin fifo: %w", err)
		}
		p.Stdin = f
	}
	return p, nil
}

// read starts reading the output FIFO at path: out gets what is read (and may pause the stream,
// see pumpStream), done is called once at its end (EOF, or Close).
func (p *Pump) Read(path string, out func([]byte) <-chan struct{}, done func()) error {
	fd, err := openFIFOReader(path)
	if err != nil {
		return err
	}
	p.ended.Add(1)
	s, err := pump.add(fd, out, func() { done(); p.ended.Done() })
	if err != nil {
		p.ended.Done()
		unix.Close(fd)
		return err
	}
	p.streams = append(p.streams, s)
	return nil
}

// Config is the FIFOs' paths, as the shim opens them.
func (p *Pump) Config() cio.Config { return p.fifos.Config }

// Cancel does nothing: opening the FIFOs never blocks.
func (p *Pump) Cancel() {}

// Wait waits until the output streams ended.
func (p *Pump) Wait() { p.ended.Wait() }

// Close stops reading the output, closes stdin and removes the FIFOs.
func (p *Pump) Close() error {
	for _, s := range p.streams {
		s.close()
	}
	var err error
	if p.Stdin != nil {
		err = p.Stdin.Close()
	}
	if p.fifos != nil {
		err = errors.Join(err, p.fifos.Close())
	}
	return err
}

var _ cio.IO = (*Pump)(nil)
