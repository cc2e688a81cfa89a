// Package kmsgoom reads the kernel's OOM kills from its log (/dev/kmsg): each kill names the cgroup
// of the task it killed (task_memcg). It is how a runtime learns of an OOM kill under the systemd
// cgroup driver, where systemd removes a container's scope, memory.events with it, some 50 ms after
// its last process died: often before the runtime (or containerd's shim, whose OOM event then never
// comes) has read the count. The kernel's log line is written at the kill and stays. cAdvisor's OOM
// watcher, which the kubelet uses, reads the same lines.
package kmsgoom

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
)

// Path is the kernel log device.
const Path = "/dev/kmsg"

// Watch calls killed with the task_memcg of every OOM kill the kernel logs from now on, until ctx
// ends. It returns an error when the log cannot be opened (no /dev/kmsg, or reading it is not
// allowed), and nil when ctx ends.
func Watch(ctx context.Context, path string, killed func(taskMemcg string)) error {
	// Non-blocking, so that the file is pollable and Close ends a pending Read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	// Only what is logged from now on: the kills of earlier runs are not this run's to report.
	if _, err := f.Seek(0, io.SeekEnd); err != nil && !errors.Is(err, syscall.ESPIPE) {
		f.Close()
		return err
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	defer f.Close()
	// One record per read; a record is at most 8 KiB (the kernel's limit for a kmsg read).
	buf := make([]byte, 8192)
	for {
		n, err := f.Read(buf)
		switch {
		case err == nil:
			// One record per read from /dev/kmsg; a record's continuation lines start with a space.
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if memcg, ok := ParseRecord([]byte(line)); ok {
					killed(memcg)
				}
			}
		case errors.Is(err, syscall.EPIPE):
			// Records were overwritten before being read: read on from the oldest one left.
		case ctx.Err() != nil:
			return nil
		default:
			return err
		}
	}
}

// ParseRecord returns the task_memcg of a kmsg record that logs an OOM kill
// ("<prio>,<seq>,<usec>,<flags>;oom-kill:constraint=...,task_memcg=/x/y,task=dd,pid=1,uid=0").
func ParseRecord(rec []byte) (string, bool) {
	line, _, _ := strings.Cut(string(rec), "\n") // continuation lines (" KEY=value") follow
	_, msg, ok := strings.Cut(line, ";")
	if !ok || !strings.HasPrefix(msg, "oom-kill:") {
		return "", false
	}
	for _, field := range strings.Split(strings.TrimPrefix(msg, "oom-kill:"), ",") {
		if v, ok := strings.CutPrefix(field, "task_memcg="); ok && strings.HasPrefix(v, "/") {
			return v, true
		}
	}
	return "", false
}
