package standalone

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
)

// probeTarget is what a probe runs against: the container and the pod's address.
type probeTarget struct {
	containerID string
	// host is the pod's IP (127.0.0.1 for pods on the host network).
	host string
}

// maxProbeOutput caps the output of an exec probe that its result keeps (the event, its log line,
// the pod's record): the first 10 KiB of stdout then stderr, as the kubelet's exec prober keeps
// (its maxReadLength). ExecSync returns up to 16 MiB of each stream.
const maxProbeOutput = 10 << 10

// execProbeGrace is how long past its timeout an exec probe waits for the runtime's answer before
// it fails as timed out. The runtime's ExecSync ends by itself within the timeout and a short drain
// (it kills the command at the timeout and does not wait for a child the command left holding
// its output), so only a hung containerd or shim makes it count.
var execProbeGrace = 5 * time.Second

// errContainerGone: the probed container no longer runs; its probes end without a verdict.
const errContainerGone = "container gone"

// runProbe runs one probe once and tells whether it succeeded, with the output or the failure
// (errContainerGone when the container stopped).
func runProbe(ctx context.Context, rt legacy.ContainerManager, p Probe, t probeTarget) (bool, string) {
	switch {
	case len(p.Exec) > 0:
		ectx := ctx
		if p.Timeout > 0 {
			var cancel context.CancelFunc
			ectx, cancel = context.WithTimeout(ctx, p.Timeout+execProbeGrace)
			defer cancel()
		}
		res, err := rt.ExecSync(ectx, t.containerID, p.Exec, p.Timeout)
		if errdefs.IsNotFound(err) || errdefs.IsFailedPrecondition(err) {
			return false, errContainerGone
		}
		// The command ran past its timeout (killed, with what it printed until then), or the
		// runtime did not answer in time.
		timedOut := errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil
		if err != nil && !timedOut {
			return false, err.Error()
		}
		var out string
		if res != nil {
			out = probeOutput(res.Stdout, res.Stderr)
		}
		if timedOut {
			msg := fmt.Sprintf("command %q timed out after %v", strings.Join(p.Exec, " "), p.Timeout)
			if out != "" {
				msg += ": " + out
			}
			return false, msg
		}
		if res.ExitCode != 0 {
			if out == "" {
				out = fmt.Sprintf("command %q exited with %d", strings.Join(p.Exec, " "), res.ExitCode)
			}
			return false, out
		}
		return true, out
	case p.TCPPort > 0:
		if t.host == "" {
			return false, "the pod has no IP"
		}
		addr := net.JoinHostPort(t.host, strconv.Itoa(p.TCPPort))
		d := net.Dialer{Timeout: p.Timeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false, fmt.Sprintf("dial tcp %s: %v", addr, err)
		}
		conn.Close()
		return true, ""
	case p.HTTPPort > 0:
		host := p.HTTPHost
		if host == "" {
			host = t.host
		}
		if host == "" {
			return false, "the pod has no IP"
		}
		url := p.HTTPScheme + "://" + net.JoinHostPort(host, strconv.Itoa(p.HTTPPort)) + p.HTTPPath
		rctx, cancel := context.WithTimeout(ctx, p.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err.Error()
		}
		req.Header.Set("User-Agent", "cri-shim-probe")
		for k, v := range p.HTTPHeaders {
			req.Header.Set(k, v)
		}
		client := &http.Client{
			// As the kubelet: no certificate check, and redirects only within the same host.
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true,
				Proxy: nil},
			CheckRedirect: func(r *http.Request, via []*http.Request) error {
				if len(via) >= 10 || r.URL.Hostname() != via[0].URL.Hostname() {
					return http.ErrUseLastResponse
				}
				return nil
			},
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return true, ""
		}
		return false, fmt.Sprintf("HTTP probe failed with statuscode: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return false, "probe has no handler"
}

// probeOutput is the start of an exec probe's output (stdout then stderr), at most
// maxProbeOutput bytes, without surrounding space.
func probeOutput(stdout, stderr []byte) string {
	b := make([]byte, 0, min(len(stdout)+len(stderr), maxProbeOutput))
	b = append(b, stdout[:min(len(stdout), maxProbeOutput)]...)
	b = append(b, stderr[:min(len(stderr), maxProbeOutput-len(b))]...)
	return strings.TrimSpace(string(b))
}

// probeWorker runs the probes of one container until stopped.
type probeWorker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *probeWorker) stop() {
	w.cancel()
	<-w.done
}

// runProbes runs p against the container every period after the initial delay: a liveness probe
// failing FailureThreshold times in a row marks the container unhealthy (SyncPod then kills and
// restarts it); a readiness probe sets the container's readiness. Each failure is an Unhealthy
// event.
func (m *Manager) runProbes(ctx context.Context, w *worker, name string, p Probe, t probeTarget) {
	pod := w.pod()
	obj := pod.Spec.EventObject()
	select {
	case <-ctx.Done():
		return
	case <-time.After(p.InitialDelay):
	}
	fails, successes := 0, 0
	tick := time.NewTicker(p.Period)
	defer tick.Stop()
	for {
		ok, out := runProbe(ctx, m.opts.Runtime, p, t)
		if ctx.Err() != nil {
			return
		}
		if !ok {
			// A container that stopped meanwhile is not unhealthy: its worker is about to go.
			if out == errContainerGone {
				return
			}
			if st, err := m.opts.Runtime.ContainerStatus(ctx, t.containerID, false); err != nil || st.State != legacy.ContainerStateRunning {
				return
			}
		}
		if ok {
			successes, fails = successes+1, 0
		} else {
			successes, fails = 0, fails+1
			m.records.Eventf(obj, legacy.EventTypeWarning, legacy.ContainerUnhealthy, "%s probe failed: %s", p.Kind, out)
		}
		switch p.Kind {
		case ProbeLiveness:
			if fails >= p.FailureThreshold {
				m.setUnhealthy(t.containerID, true)
				return
			}
		case ProbeReadiness:
			if successes >= p.SuccessThreshold {
				m.records.SetReady(pod.Namespace, pod.Name, name, true)
			} else if fails >= p.FailureThreshold {
				m.records.SetReady(pod.Namespace, pod.Name, name, false)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
