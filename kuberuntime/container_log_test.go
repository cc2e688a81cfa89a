package kuberuntime

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/crilog"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// closeLater closes ctrIO at the end of the test, after the cleanups registered later (those of
// plantFIFO: a pump blocked on a planted FIFO holds the stream's lock until its reader is closed).
func closeLater(t *testing.T) func(*containerIO) {
	var ios []*containerIO
	t.Cleanup(func() {
		for _, ctrIO := range ios {
			ctrIO.close(0)
		}
	})
	return func(ctrIO *containerIO) { ios = append(ios, ctrIO) }
}

// logTestContainer is a created container whose log is <logDir>/<name>/0.log.
func logTestContainer(t *testing.T, logDir, name string) *podContainer {
	return &podContainer{
		meta: containerMetadata{ID: name, SandboxID: "sb", LogPath: filepath.Join(logDir, name, "0.log")},
		config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name},
			LogPath:  name + "/0.log",
		},
		stateDir: t.TempDir(), rootDir: t.TempDir(),
		state: legacy.ContainerStateCreated, exited: make(chan struct{}),
	}
}

// feedStdout writes data into the container's stdout FIFO (read by the pump) from a goroutine.
func feedStdout(t *testing.T, c *podContainer, data []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(c.stateDir, "io", "stdout"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer f.Close()
		f.Write(data)
	}()
}

// waitLog polls the log at path until it holds want, for up to d.
func waitLog(t *testing.T, path, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q after %v (%d bytes)", path, want, d, len(b))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A FIFO planted at a container's next log file (its log dir mounted in a container): the start
// fails at once with a clear error, and another container's output keeps reaching its log. Before,
// the log was opened blocking (no reader: the start hung) and written by the one output pump
// goroutine (a reader that does not read: every container's output stalled).
func TestLogFIFODoesNotStallOtherContainers(t *testing.T) {
	r := &ContainerdRuntime{bg: context.Background(), sandboxes: newSandboxStore()}
	closeIO := closeLater(t)
	logDir := t.TempDir()
	os.MkdirAll(filepath.Join(logDir, "a"), 0o755)
	testutil.PlantFIFO(t, filepath.Join(logDir, "a", "0.log"))

	a := logTestContainer(t, logDir, "a")
	var ioA *containerIO
	var err error
	testutil.Within(t, 5*time.Second, "opening a log that is a FIFO", func() { ioA, err = r.openContainerIO(t.Context(), a) })
	if err == nil {
		closeIO(ioA)
		t.Error("a FIFO at the log path was opened")
		feedStdout(t, a, bytes.Repeat([]byte(strings.Repeat("a", 99)+"\n"), 10000))
	} else if !errors.Is(err, crilog.ErrNotRegular) || !errdefs.IsFailedPrecondition(err) {
		t.Errorf("open a FIFO log: %v, want ErrNotRegular, FailedPrecondition", err)
	}

	b := logTestContainer(t, logDir, "b")
	ioB, err := r.openContainerIO(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	closeIO(ioB)
	feedStdout(t, b, []byte("hello from b\n"))
	waitLog(t, b.meta.LogPath, " stdout F hello from b\n", 5*time.Second)
}

// The kubelet rotates a running container's log (renames it) and calls ReopenContainerLog; a FIFO
// planted at the path in between makes the call fail at once (FailedPrecondition), the container's
// output goes on into the rotated file, and another container's output keeps flowing.
func TestReopenLogFIFODoesNotStallOtherContainers(t *testing.T) {
	r := &ContainerdRuntime{bg: context.Background(), sandboxes: newSandboxStore()}
	logDir := t.TempDir()
	closeIO := closeLater(t)
	start := func(name string) *podContainer {
		c := logTestContainer(t, logDir, name)
		ctrIO, err := r.openContainerIO(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		closeIO(ctrIO)
		c.io, c.state = ctrIO, legacy.ContainerStateRunning
		r.ctrs().store.add(c)
		return c
	}
	a, b := start("a"), start("b")
	rotated := a.meta.LogPath + ".20240101-000000"
	if err := os.Rename(a.meta.LogPath, rotated); err != nil {
		t.Fatal(err)
	}
	testutil.PlantFIFO(t, a.meta.LogPath)
	var err error
	testutil.Within(t, 5*time.Second, "ReopenContainerLog onto a FIFO", func() { err = r.ReopenContainerLog(t.Context(), "a") })
	if !errors.Is(err, crilog.ErrNotRegular) || !errdefs.IsFailedPrecondition(err) {
		t.Errorf("ReopenContainerLog onto a FIFO: %v, want ErrNotRegular, FailedPrecondition", err)
	}
	feedStdout(t, a, append(bytes.Repeat([]byte(strings.Repeat("a", 99)+"\n"), 10000), "last of a\n"...)) // 1 MB
	feedStdout(t, b, []byte("hello from b\n"))
	waitLog(t, b.meta.LogPath, " stdout F hello from b\n", 5*time.Second)
	// a's output is not lost either: it goes on into the file it had.
	waitLog(t, rotated, " stdout F last of a\n", 10*time.Second)
}

// terminationContainer is a running container whose termination-message file (the host side of
// the mount on /dev/termination-log) is hostPath.
func terminationContainer(t *testing.T, hostPath string) *podContainer {
	return &podContainer{
		meta: containerMetadata{ID: "t"},
		config: &runtime.ContainerConfig{
			Annotations: map[string]string{containerspec.AnnotationTerminationMessagePath: "/dev/termination-log"},
			Mounts:      []*runtime.Mount{{ContainerPath: "/dev/termination-log", HostPath: hostPath}},
		},
		rootDir: t.TempDir(), state: legacy.ContainerStateRunning, exited: make(chan struct{}),
	}
}

// A FIFO at the termination-message path (no writer: a blocking open waits for one forever) does
// not hang the exit's recording: the exit is recorded at once, without a message.
func TestExitWithFIFOTerminationMessage(t *testing.T) {
	r := &ContainerdRuntime{bg: context.Background(), sandboxes: newSandboxStore()}
	host := filepath.Join(t.TempDir(), "termination-log")
	if err := unix.Mkfifo(host, 0o666); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // lets a blocked open for reading return
		if fd, err := unix.Open(host, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			time.AfterFunc(time.Second, func() { unix.Close(fd) })
		}
	})
	c := terminationContainer(t, host)
	testutil.Within(t, 5*time.Second, "exit handling", func() { r.handleContainerExit(c, false, 1, time.Now()) })
	snap := c.snapshot()
	state, rec := snap.state, snap.rec
	if state != legacy.ContainerStateExited || rec.Message != "" || rec.TerminationMessage != "" || rec.ExitCode != 1 {
		t.Fatalf("state %v, record %+v", state, rec)
	}
}

// The termination message is the file's last 4096 bytes, as the kubelet reads it; a symlink at
// the path is not followed.
func TestTerminationMessageFile(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "termination-log")
	msg := strings.Repeat("a", 904) + strings.Repeat("b", 4096)
	os.WriteFile(host, []byte(msg), 0o644)
	if got := terminationMessage(terminationContainer(t, host).config); got != msg[904:] {
		t.Errorf("message of %d bytes, %q…, want the last 4096", len(got), got[:min(len(got), 10)])
	}
	os.WriteFile(host, []byte("short"), 0o644)
	if got := terminationMessage(terminationContainer(t, host).config); got != "short" {
		t.Errorf("message %q, want %q", got, "short")
	}
	link := filepath.Join(dir, "link")
	os.Symlink(host, link)
	if got := terminationMessage(terminationContainer(t, link).config); got != "" {
		t.Errorf("message %q through a symlink, want none", got)
	}
}

// A termination-message read that hangs (a file on a hung volume) holds neither the container's
// lock (ListContainers and the rest take it) nor the exit's recording for longer than
// terminationMessageTimeout.
func TestExitWithHungTerminationMessageRead(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	readTerminationFile = func(string) (string, error) {
		close(entered)
		<-release
		return "too late", nil
	}
	defer func() { readTerminationFile = readTerminationMessage }()
	r := &ContainerdRuntime{bg: context.Background(), sandboxes: newSandboxStore()}
	c := terminationContainer(t, filepath.Join(t.TempDir(), "on-a-hung-volume"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.handleContainerExit(c, false, 0, time.Now())
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the termination message was not read")
	}
	testutil.Within(t, time.Second, "the container's lock while the message is read", func() { c.snapshot() })
	select {
	case <-done:
	case <-time.After(terminationMessageTimeout + 5*time.Second):
		t.Fatalf("exit not recorded %v after the read hung", terminationMessageTimeout+5*time.Second)
	}
	if snap := c.snapshot(); snap.state != legacy.ContainerStateExited || snap.rec.Message != "" || snap.rec.Reason != legacy.ReasonCompleted {
		t.Fatalf("state %v, record %+v", snap.state, snap.rec)
	}
}

// The termination message is the model's status message (as the kubelet composes its own), and not
// the runtime's: the CRI status carries only the latter, the kubelet reading the file itself and
// appending it (a runtime that reported both made it "DONE: DONE").
func TestTerminationMessageIsNotTheRuntimeMessage(t *testing.T) {
	r := &ContainerdRuntime{bg: context.Background(), sandboxes: newSandboxStore()}
	host := filepath.Join(t.TempDir(), "termination-log")
	os.WriteFile(host, []byte("DONE"), 0o644)
	c := terminationContainer(t, host)
	testutil.Within(t, 5*time.Second, "exit handling", func() { r.handleContainerExit(c, false, 0, time.Now()) })
	d := r.details(c)
	if d.Message != "DONE" || d.RuntimeMessage != "" {
		t.Fatalf("message %q, runtime message %q; want %q and none", d.Message, d.RuntimeMessage, "DONE")
	}

	// A start that failed: the runtime's message, and no termination message to add.
	c = terminationContainer(t, filepath.Join(t.TempDir(), "none"))
	c.markStartFailed(errors.New("exec: no such file"))
	if d := r.details(c); d.RuntimeMessage != "exec: no such file" || d.Message != "exec: no such file" {
		t.Fatalf("start failure: message %q, runtime message %q", d.Message, d.RuntimeMessage)
	}
}

func TestJoinMessages(t *testing.T) {
	for _, tc := range []struct{ runtimeMsg, termination, want string }{
		{"", "", ""}, {"a", "", "a"}, {"", "b", "b"}, {"a", "b", "a: b"},
	} {
		if got := joinMessages(tc.runtimeMsg, tc.termination); got != tc.want {
			t.Errorf("joinMessages(%q, %q) = %q, want %q", tc.runtimeMsg, tc.termination, got, tc.want)
		}
	}
}
