package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/imageservice"
	"github.com/cri-shim/cri-shim/kuberuntime"
	"github.com/cri-shim/cri-shim/legacy"
)

// pullUsage is the synopsis of cri-shim pull.
const pullUsage = "usage: cri-shim pull [--creds USER [--password-stdin] | --creds-file FILE] [--policy Always|IfNotPresent|Never] [daemon flags] IMAGE"

// Environment variables holding pull credentials, crictl's: USER[:PASSWORD] and base64 of
// USER:PASSWORD. A process's environment is readable by its owner only, unlike its command line.
const (
	envCreds = "CRICTL_CREDS"
	envAuth  = "CRICTL_AUTH"
)

// maxSecret bounds what is read from stdin or a file for credentials.
const maxSecret = 64 << 10

// pullArgs are the parsed arguments of cri-shim pull.
type pullArgs struct {
	image  string
	policy legacy.PullPolicy
	auth   *runtime.AuthConfig // nil: anonymous
}

// credsInput is where pull's credentials come from besides the flags.
type credsInput struct {
	stdin io.Reader
	// readPassword asks for a password on the terminal without echo; nil when there is none.
	readPassword func(prompt string) (string, error)
	getenv       func(string) string
}

// stdCredsInput reads the process's stdin, terminal and environment.
func stdCredsInput() credsInput {
	in := credsInput{stdin: os.Stdin, getenv: os.Getenv}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		in.readPassword = func(prompt string) (string, error) {
			fmt.Fprint(os.Stderr, prompt)
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(os.Stderr)
			return string(b), err
		}
	}
	return in
}

// parsePullArgs parses `cri-shim pull [flags] IMAGE`. No secret is taken from the command line,
// which every user of the host reads in /proc/PID/cmdline: --creds USER (or --username USER)
// names the user and the password is asked on the terminal, or read from stdin with
// --password-stdin; --creds-file FILE holds USER:PASSWORD (a file only its owner can read);
// without these flags, $CRICTL_CREDS (USER[:PASSWORD]) or $CRICTL_AUTH (base64 of
// USER:PASSWORD) as crictl. --creds USER:PASSWORD and --auth BASE64 are refused.
func parsePullArgs(args []string, in credsInput) (pullArgs, error) {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	creds := fs.String("creds", "", "registry user; the password is asked for, or read from stdin with --password-stdin")
	username := fs.String("username", "", "same as --creds USER")
	credsFile := fs.String("creds-file", "", "file holding USER:PASSWORD, readable by its owner only")
	passwordStdin := fs.Bool("password-stdin", false, "read the password of --creds USER from stdin")
	fs.String("auth", "", "refused: the secret would be on the command line ($CRICTL_AUTH)")
	policy := fs.String("policy", string(legacy.PullAlways), "pull policy: Always, IfNotPresent or Never")
	if err := fs.Parse(args); err != nil {
		return pullArgs{}, fmt.Errorf("pull: %w", err)
	}
	if fs.NArg() != 1 {
		return pullArgs{}, errors.New(pullUsage)
	}
	pa := pullArgs{image: fs.Arg(0)}
	switch strings.ToLower(*policy) {
	case "always":
		pa.policy = legacy.PullAlways
	case "ifnotpresent":
		pa.policy = legacy.PullIfNotPresent
	case "never":
		pa.policy = legacy.PullNever
	default:
		return pullArgs{}, fmt.Errorf("pull: unknown pull policy %q (Always, IfNotPresent or Never)", *policy)
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["auth"] || strings.Contains(*creds, ":") || strings.Contains(*username, ":") {
		what := "--creds USER:PASSWORD"
		if set["auth"] {
			what = "--auth"
		}
		return pullArgs{}, fmt.Errorf("pull: %s would put the password on the command line, where every user of the host reads it (/proc/PID/cmdline): "+
			"give --creds USER and type the password, or pipe it with --password-stdin, or use --creds-file FILE, $%s or $%s", what, envCreds, envAuth)
	}
	user := *creds
	if set["username"] {
		if set["creds"] {
			return pullArgs{}, errors.New("pull: both --creds and --username are given")
		}
		user = *username
	}
	if (set["creds"] || set["username"]) && user == "" {
		return pullArgs{}, errors.New("pull: the user of --creds is empty")
	}
	if user != "" && set["creds-file"] {
		return pullArgs{}, errors.New("pull: both --creds and --creds-file are given")
	}
	if *passwordStdin && user == "" {
		return pullArgs{}, errors.New("pull: --password-stdin needs --creds USER")
	}

	switch {
	case user != "":
		var pass string
		if *passwordStdin {
			b, err := readSecret(in.stdin)
			if err != nil {
				return pullArgs{}, fmt.Errorf("pull: read the password from stdin: %w", err)
			}
			pass = strings.TrimRight(string(b), "\r\n")
			if pass == "" {
				return pullArgs{}, errors.New("pull: --password-stdin: stdin holds no password")
			}
		} else {
			if in.readPassword == nil {
				return pullArgs{}, fmt.Errorf("pull: --creds %s: no terminal to ask the password on: pipe it with --password-stdin, or use --creds-file or $%s", user, envCreds)
			}
			var err error
			if pass, err = in.readPassword(fmt.Sprintf("Password for %s: ", user)); err != nil {
				return pullArgs{}, fmt.Errorf("pull: read the password: %w", err)
			}
		}
		pa.auth = &runtime.AuthConfig{Username: user, Password: pass}
	case set["creds-file"]:
		a, err := readCredsFile(*credsFile)
		if err != nil {
			return pullArgs{}, fmt.Errorf("pull: --creds-file: %w", err)
		}
		pa.auth = a
	default:
		// The environment, when no flag gives credentials (a flag wins, as on crictl's
		// command line).
		a, err := credsFromEnv(in.getenv)
		if err != nil {
			return pullArgs{}, fmt.Errorf("pull: %w", err)
		}
		pa.auth = a
	}
	return pa, nil
}

func readSecret(r io.Reader) ([]byte, error) {
	if r == nil {
		return nil, errors.New("no stdin")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSecret+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecret {
		return nil, fmt.Errorf("more than %d bytes", maxSecret)
	}
	return b, nil
}

// readCredsFile reads USER:PASSWORD from the first line of path, a file that neither its group
// nor others may read (as ssh does with keys: a password others can read is no secret).
func readCredsFile(path string) (*runtime.AuthConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %#o): chmod 600 it", path, st.Mode().Perm())
	}
	b, err := readSecret(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	user, pass, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
	if !ok || user == "" {
		return nil, fmt.Errorf("%s: the first line is not USER:PASSWORD", path)
	}
	return &runtime.AuthConfig{Username: user, Password: pass}, nil
}

// credsFromEnv reads $CRICTL_CREDS or $CRICTL_AUTH (not both); nil when neither is set.
func credsFromEnv(getenv func(string) string) (*runtime.AuthConfig, error) {
	if getenv == nil {
		return nil, nil
	}
	creds, auth := getenv(envCreds), getenv(envAuth)
	switch {
	case creds != "" && auth != "":
		return nil, fmt.Errorf("both $%s and $%s are set", envCreds, envAuth)
	case creds != "":
		user, pass, _ := strings.Cut(creds, ":")
		if user == "" {
			return nil, fmt.Errorf("$%s: the user is empty", envCreds)
		}
		return &runtime.AuthConfig{Username: user, Password: pass}, nil
	case auth != "":
		if _, err := base64.StdEncoding.DecodeString(auth); err != nil {
			return nil, fmt.Errorf("$%s is not base64: %w", envAuth, err)
		}
		return &runtime.AuthConfig{Auth: auth}, nil
	}
	return nil, nil
}

// runPull pulls pa.image through the model's image puller into svc's namespace. On a terminal
// it draws a progress bar; otherwise it prints one line when done.
func runPull(ctx context.Context, svc *imageservice.Service, pa pullArgs, out io.Writer) error {
	image := pa.image
	var auths []*runtime.AuthConfig
	if pa.auth != nil {
		auths = append(auths, pa.auth)
	}

	recorder := legacy.NewMemoryRecorder(64, nil)
	puller := legacy.NewImagePuller(recorder, kuberuntime.NewImageServiceBackend(svc), nil)
	req := legacy.PullRequest{Image: legacy.ImageSpec{Image: image}, PullPolicy: pa.policy, Auths: auths}

	var bar *progressBar
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		width, _, err := term.GetSize(int(f.Fd()))
		if err != nil || width < 40 {
			width = 80
		}
		bar = &progressBar{out: out, width: width, image: image}
		req.Progress = bar.update
	}

	start := time.Now()
	id, err := puller.PullImage(ctx, req)
	if bar != nil {
		bar.finish(err == nil)
	}
	if err != nil {
		return err
	}
	already := false
	for _, ev := range recorder.Events() {
		if ev.Reason == legacy.PulledImage && strings.Contains(ev.Message, "already present") {
			already = true
		}
	}
	var size int64
	if img, ok := svc.Image(id); ok {
		size = img.Size
	}
	if already {
		fmt.Fprintf(out, "%s already present: %s (%s)\n", image, id, humanBytes(size))
		return nil
	}
	fmt.Fprintf(out, "pulled %s: %s (%s) in %s\n", image, id, humanBytes(size), time.Since(start).Round(time.Millisecond))
	return nil
}

// progressBar draws one line, rewritten in place, at most ten times a second.
type progressBar struct {
	out   io.Writer
	width int
	image string

	mu    sync.Mutex
	last  time.Time
	drawn bool
	p     imageservice.Progress
}

func (b *progressBar) update(p imageservice.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p = p
	if !p.Finished && time.Since(b.last) < 100*time.Millisecond {
		return
	}
	b.last = time.Now()
	b.draw()
}

func (b *progressBar) draw() {
	p := b.p
	layers, layersDone := 0, 0
	for _, bl := range p.Blobs {
		if bl.IsLayer() {
			layers++
			if bl.Complete() {
				layersDone++
			}
		}
	}
	stats := fmt.Sprintf(" %s/%s  %d/%d layers  %s", humanBytes(p.Done), humanBytes(p.Total), layersDone, layers,
		p.Elapsed.Round(100*time.Millisecond))
	name := b.image
	if len(name) > 40 {
		name = "…" + name[len(name)-39:]
	}
	barWidth := b.width - len([]rune(name)) - len(stats) - 4
	if barWidth < 10 {
		barWidth = 10
	}
	filled := 0
	if p.Total > 0 {
		filled = int(int64(barWidth) * min(p.Done, p.Total) / p.Total)
	}
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	line := fmt.Sprintf("%s [%s]%s", name, bar, stats)
	if r := []rune(line); len(r) > b.width-1 {
		line = string(r[:b.width-1])
	}
	fmt.Fprintf(b.out, "\r\x1b[K%s", line)
	b.drawn = true
}

func (b *progressBar) finish(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.drawn {
		return
	}
	if ok {
		b.p.Done = b.p.Total
		for i := range b.p.Blobs {
			b.p.Blobs[i].Done = b.p.Blobs[i].Total
		}
		b.draw()
	}
	fmt.Fprintln(b.out)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
