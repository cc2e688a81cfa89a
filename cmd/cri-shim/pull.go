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
	"github.com/cri-shim/cri-shim/legacy"
)

// runPull is `cri-shim pull [--creds USER[:PASSWORD]] [--auth BASE64] [--policy POLICY] IMAGE`:
// it pulls IMAGE through the model's image puller into svc's namespace. On a terminal it draws a
// progress bar; otherwise it prints one line when done.
func runPull(ctx context.Context, svc *imageservice.Service, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	creds := fs.String("creds", "", "registry credentials, USER[:PASSWORD]")
	auth := fs.String("auth", "", "registry credentials, base64 of USER:PASSWORD")
	policy := fs.String("policy", string(legacy.PullAlways), "pull policy: Always, IfNotPresent or Never")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	if fs.NArg() != 1 {
		return errors.New("usage: cri-shim pull [--creds USER[:PASSWORD]] [--auth BASE64] [--policy Always|IfNotPresent|Never] IMAGE")
	}
	image := fs.Arg(0)
	var pol legacy.PullPolicy
	switch strings.ToLower(*policy) {
	case "always":
		pol = legacy.PullAlways
	case "ifnotpresent":
		pol = legacy.PullIfNotPresent
	case "never":
		pol = legacy.PullNever
	default:
		return fmt.Errorf("pull: unknown pull policy %q (Always, IfNotPresent or Never)", *policy)
	}
	var auths []*runtime.AuthConfig
	switch {
	case *creds != "":
		user, pass, _ := strings.Cut(*creds, ":")
		auths = append(auths, &runtime.AuthConfig{Username: user, Password: pass})
	case *auth != "":
		if _, err := base64.StdEncoding.DecodeString(*auth); err != nil {
			return fmt.Errorf("pull: --auth is not base64: %w", err)
		}
		auths = append(auths, &runtime.AuthConfig{Auth: *auth})
	}

	recorder := legacy.NewMemoryRecorder(64, nil)
	puller := legacy.NewImagePuller(recorder, legacy.NewImageServiceBackend(svc), nil)
	req := legacy.PullRequest{Image: legacy.ImageSpec{Image: image}, PullPolicy: pol, Auths: auths}

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
