//go:build integration

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/test/critest/testregistry"
)

// `cri-shim pull` against a registry wanting a password: the password is never taken from the
// command line (every user of the host reads /proc/PID/cmdline), and reaches the registry from
// stdin or from crictl's $CRICTL_CREDS. On both pull paths (image_pull_via_transfer).
func TestPullCLICredentials(t *testing.T) {
	for _, via := range []bool{false, true} {
		t.Run("image_pull_via_transfer="+strconv.FormatBool(via), func(t *testing.T) { testPullCLICredentials(t, via) })
	}
}

func testPullCLICredentials(t *testing.T, viaTransfer bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const user, password = "alice", "wonderland-7f3a"
	reg, err := testregistry.Start(ctx, testregistry.Options{BasicAuth: &testregistry.BasicAuth{Username: user, Password: password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	image, err := reg.LocalRef(testregistry.SandboxImage) // 127.0.0.1:PORT/...: plain HTTP, no hosts dir needed
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/tmp", "crishim-pull-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.UnmountAll(dir); os.RemoveAll(dir) })
	bin := buildDaemon(t)
	daemonFlags := []string{"--managed-containerd", "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"),
		"--image-pull-via-transfer=" + strconv.FormatBool(viaTransfer)}

	// The environment of the test without any CRICTL_ variable of its own.
	var baseEnv []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRICTL_") {
			baseEnv = append(baseEnv, kv)
		}
	}
	pull := func(env []string, stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append(append([]string{"pull"}, daemonFlags...), args...)...)
		cmd.Env = append(append([]string(nil), baseEnv...), env...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// Refused, before anything is pulled.
	for _, args := range [][]string{
		{"--creds", user + ":" + password, image},
		{"--auth", "YWxpY2U6d29uZGVybGFuZC03ZjNh", image},
	} {
		out, err := pull(nil, "", args...)
		if err == nil || !strings.Contains(out, "/proc/PID/cmdline") {
			t.Errorf("pull %q: %v, want a refusal naming /proc/PID/cmdline:\n%s", args[:2], err, out)
		}
		if strings.Contains(out, "pulled") {
			t.Errorf("pull %q pulled:\n%s", args[:2], out)
		}
	}
	// No terminal to ask on (stdin is not one) and no --password-stdin.
	if out, err := pull(nil, password+"\n", "--creds", user, image); err == nil || !strings.Contains(out, "no terminal") {
		t.Errorf("--creds USER without a terminal: %v\n%s", err, out)
	}
	// Without credentials, the registry refuses.
	if out, err := pull(nil, "", image); err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("anonymous pull: %v\n%s", err, out)
	}

	// The password from stdin. The process waits for it: its command line is read meanwhile.
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"pull"}, daemonFlags...), "--creds", user, "--password-stdin", image)...)
	cmd.Env = baseEnv
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Start returns once exec has begun, before the kernel has placed the new arguments: until
	// then /proc/PID/cmdline reads empty. Wait for them.
	var cmdline []byte
	for deadline := time.Now().Add(10 * time.Second); len(cmdline) == 0 && time.Now().Before(deadline); {
		if cmdline, err = os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline"); err != nil {
			t.Fatal(err)
		}
		if len(cmdline) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !bytes.Contains(cmdline, []byte(user)) || bytes.Contains(cmdline, []byte(password)) {
		t.Errorf("command line %q", bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
	}
	if _, err := stdin.Write([]byte(password + "\n")); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "pulled") {
		t.Fatalf("pull with the password on stdin: %v\n%s", err, out.String())
	}

	// crictl's environment variable.
	if out, err := pull([]string{"CRICTL_CREDS=" + user + ":" + password}, "", "--policy", "Always", image); err != nil || !strings.Contains(out, "pulled") {
		t.Errorf("pull with $CRICTL_CREDS: %v\n%s", err, out)
	}
	// A wrong password on stdin: the registry's 401.
	if out, err := pull(nil, "wrong\n", "--creds", user, "--password-stdin", image); err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("wrong password: %v\n%s", err, out)
	}
}
