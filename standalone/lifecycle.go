package standalone

import (
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	corev1 "k8s.io/api/core/v1"
)

// convertLifecycle converts the container's postStart and preStop hooks (nil: none). A malformed
// handler is an InvalidArgument error, and so is tcpSocket, which Kubernetes deprecated for hooks
// (the kubelet accepts it and does nothing, which here would be a hook silently dropped).
func convertLifecycle(c *corev1.Container, grace time.Duration) (*legacy.Lifecycle, error) {
	lc := c.Lifecycle
	if lc == nil {
		return nil, nil
	}
	if lc.StopSignal != nil {
		return nil, fmt.Errorf("lifecycle.stopSignal is not supported: %w", errdefs.ErrInvalidArgument)
	}
	out := &legacy.Lifecycle{}
	var err error
	if out.PostStart, err = convertHandler(lc.PostStart, c, grace); err != nil {
		return nil, fmt.Errorf("lifecycle.postStart: %w", err)
	}
	if out.PreStop, err = convertHandler(lc.PreStop, c, grace); err != nil {
		return nil, fmt.Errorf("lifecycle.preStop: %w", err)
	}
	if out.PostStart == nil && out.PreStop == nil {
		return nil, nil
	}
	return out, nil
}

func convertHandler(h *corev1.LifecycleHandler, c *corev1.Container, grace time.Duration) (*legacy.LifecycleHandler, error) {
	if h == nil {
		return nil, nil
	}
	invalid := func(msg string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(msg, args...), errdefs.ErrInvalidArgument)
	}
	if h.TCPSocket != nil {
		return nil, invalid("tcpSocket handlers are deprecated for lifecycle hooks and not supported (use exec, httpGet or sleep)")
	}
	n := 0
	out := &legacy.LifecycleHandler{}
	if h.Exec != nil {
		n++
		if len(h.Exec.Command) == 0 {
			return nil, invalid("exec.command is empty")
		}
		out.Exec = &legacy.ExecAction{Command: append([]string(nil), h.Exec.Command...)}
	}
	if h.HTTPGet != nil {
		n++
		port, err := resolvePort(h.HTTPGet.Port, c)
		if err != nil {
			return nil, invalid("httpGet: %v", err)
		}
		scheme := strings.ToLower(string(h.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		if scheme != "http" && scheme != "https" {
			return nil, invalid("httpGet.scheme %q: want HTTP or HTTPS", h.HTTPGet.Scheme)
		}
		a := &legacy.HTTPGetAction{Host: h.HTTPGet.Host, Port: port, Path: h.HTTPGet.Path, Scheme: scheme}
		for _, hd := range h.HTTPGet.HTTPHeaders {
			if hd.Name == "" {
				return nil, invalid("httpGet.httpHeaders: a header has no name")
			}
			if a.Headers == nil {
				a.Headers = map[string]string{}
			}
			a.Headers[hd.Name] = hd.Value
		}
		out.HTTPGet = a
	}
	if h.Sleep != nil {
		n++
		// As the API server: the sleep fits in the grace period the preStop hook has.
		if h.Sleep.Seconds < 0 || time.Duration(h.Sleep.Seconds)*time.Second > grace {
			return nil, invalid("sleep.seconds %d: must be between 0 and the termination grace period (%v)", h.Sleep.Seconds, grace)
		}
		out.Sleep = &legacy.SleepAction{Seconds: h.Sleep.Seconds}
	}
	if n != 1 {
		return nil, invalid("exactly one of exec, httpGet and sleep is required")
	}
	return out, nil
}
