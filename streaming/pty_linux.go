package streaming

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// StartPty starts c with a new pseudo-terminal as its stdin, stdout and stderr (those c does not
// set already) and as its controlling terminal, in a new session, and returns the terminal's
// master side; the caller closes it.
func StartPty(c *exec.Cmd) (*os.File, error) {
	master, slave, err := openPty()
	if err != nil {
		return nil, err
	}
	defer slave.Close()
	if c.Stdin == nil {
		c.Stdin = slave
	}
	if c.Stdout == nil {
		c.Stdout = slave
	}
	if c.Stderr == nil {
		c.Stderr = slave
	}
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.Setsid = true
	c.SysProcAttr.Setctty = true
	c.SysProcAttr.Ctty = 0 // the child's fd 0
	if c.Stdin != slave {
		// The controlling terminal must be one of the child's descriptors: give it as an extra one.
		c.ExtraFiles = append(c.ExtraFiles, slave)
		c.SysProcAttr.Ctty = 3 + len(c.ExtraFiles) - 1
	}
	if err := c.Start(); err != nil {
		master.Close()
		return nil, err
	}
	return master, nil
}

// openPty opens a new master/slave pseudo-terminal pair.
func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// SetPtySize sets the size of the terminal whose master or slave side is f.
func SetPtySize(f *os.File, size TerminalSize) error {
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Height, Col: size.Width})
}
