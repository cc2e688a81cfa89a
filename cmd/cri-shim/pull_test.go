package main

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/legacy"
)

// No pull credential is taken from the command line (/proc/PID/cmdline is readable by every
// user of the host): the user is, the password comes from the terminal, stdin, a private file
// or the environment (crictl's $CRICTL_CREDS / $CRICTL_AUTH).
func TestParsePullArgsCredentials(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "private")
	if err := os.WriteFile(private, []byte("carol:file-secret\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "shared")
	if err := os.WriteFile(shared, []byte("carol:file-secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noColon := filepath.Join(dir, "nocolon")
	if err := os.WriteFile(noColon, []byte("carol\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("dave:env-secret"))
	terminal := func(pw string) func(string) (string, error) {
		return func(prompt string) (string, error) {
			if !strings.Contains(prompt, "Password") {
				t.Errorf("prompt %q", prompt)
			}
			return pw, nil
		}
	}

	cases := []struct {
		name    string
		args    []string
		stdin   string
		term    func(string) (string, error)
		env     map[string]string
		want    *runtime.AuthConfig
		wantErr string
	}{
		{name: "anonymous", args: []string{"busybox"}},
		{name: "password on the command line", args: []string{"--creds", "alice:secret", "busybox"}, wantErr: "/proc/PID/cmdline"},
		{name: "password in --username", args: []string{"--username", "alice:secret", "busybox"}, wantErr: "/proc/PID/cmdline"},
		{name: "base64 on the command line", args: []string{"--auth", base64.StdEncoding.EncodeToString([]byte("alice:secret")), "busybox"}, wantErr: "/proc/PID/cmdline"},
		{name: "password from stdin", args: []string{"--creds", "alice", "--password-stdin", "busybox"}, stdin: "s3cret:with colon\n",
			want: &runtime.AuthConfig{Username: "alice", Password: "s3cret:with colon"}},
		{name: "password from stdin, CRLF", args: []string{"--username", "alice", "--password-stdin", "busybox"}, stdin: "s3cret\r\n",
			want: &runtime.AuthConfig{Username: "alice", Password: "s3cret"}},
		{name: "empty stdin", args: []string{"--creds", "alice", "--password-stdin", "busybox"}, stdin: "\n", wantErr: "no password"},
		{name: "password from the terminal", args: []string{"--creds", "alice", "busybox"}, term: terminal("typed"),
			want: &runtime.AuthConfig{Username: "alice", Password: "typed"}},
		{name: "no terminal, no --password-stdin", args: []string{"--creds", "alice", "busybox"}, wantErr: "no terminal"},
		{name: "--password-stdin without a user", args: []string{"--password-stdin", "busybox"}, stdin: "x\n", wantErr: "needs --creds"},
		{name: "empty user", args: []string{"--creds", "", "busybox"}, wantErr: "empty"},
		{name: "--creds and --username", args: []string{"--creds", "a", "--username", "b", "busybox"}, wantErr: "both"},
		{name: "private file", args: []string{"--creds-file", private, "busybox"},
			want: &runtime.AuthConfig{Username: "carol", Password: "file-secret"}},
		{name: "file others can read", args: []string{"--creds-file", shared, "busybox"}, wantErr: "readable by others"},
		{name: "file without a password", args: []string{"--creds-file", noColon, "busybox"}, wantErr: "USER:PASSWORD"},
		{name: "missing file", args: []string{"--creds-file", filepath.Join(dir, "missing"), "busybox"}, wantErr: "no such file"},
		{name: "--creds and --creds-file", args: []string{"--creds", "a", "--creds-file", private, "busybox"}, wantErr: "both"},
		{name: "$CRICTL_CREDS", args: []string{"busybox"}, env: map[string]string{"CRICTL_CREDS": "dave:env-secret"},
			want: &runtime.AuthConfig{Username: "dave", Password: "env-secret"}},
		{name: "$CRICTL_AUTH", args: []string{"busybox"}, env: map[string]string{"CRICTL_AUTH": b64},
			want: &runtime.AuthConfig{Auth: b64}},
		{name: "$CRICTL_AUTH not base64", args: []string{"busybox"}, env: map[string]string{"CRICTL_AUTH": "!!"}, wantErr: "base64"},
		{name: "both variables", args: []string{"busybox"}, env: map[string]string{"CRICTL_CREDS": "a:b", "CRICTL_AUTH": b64}, wantErr: "both"},
		{name: "a flag wins over the environment", args: []string{"--creds-file", private, "busybox"}, env: map[string]string{"CRICTL_CREDS": "dave:env-secret"},
			want: &runtime.AuthConfig{Username: "carol", Password: "file-secret"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := credsInput{stdin: strings.NewReader(c.stdin), readPassword: c.term, getenv: func(k string) string { return c.env[k] }}
			pa, err := parsePullArgs(c.args, in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, c.wantErr)
				}
				// An error never repeats the secret it refuses.
				for _, secret := range []string{"secret", "file-secret", "env-secret"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q shows the secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pa.image != "busybox" || pa.policy != legacy.PullAlways {
				t.Errorf("image %q policy %q", pa.image, pa.policy)
			}
			got, want := pa.auth, c.want
			if (got == nil) != (want == nil) || (got != nil && (got.Username != want.Username || got.Password != want.Password || got.Auth != want.Auth)) {
				t.Errorf("auth %v, want %v", got, want)
			}
		})
	}
}

func TestParsePullArgsPolicyAndUsage(t *testing.T) {
	in := credsInput{getenv: func(string) string { return "" }}
	pa, err := parsePullArgs([]string{"--policy", "ifnotpresent", "busybox"}, in)
	if err != nil || pa.policy != legacy.PullIfNotPresent {
		t.Errorf("policy: %v %v", pa.policy, err)
	}
	if _, err := parsePullArgs([]string{"--policy", "sometimes", "busybox"}, in); err == nil {
		t.Error("unknown policy accepted")
	}
	if _, err := parsePullArgs(nil, in); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("no image: %v", err)
	}
	if _, err := parsePullArgs([]string{"--creds", "a", "--password-stdin", "busybox"}, credsInput{stdin: errReader{}}); err == nil {
		t.Error("stdin read error ignored")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("broken stdin") }
