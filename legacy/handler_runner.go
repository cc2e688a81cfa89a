package legacy

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
)

// Lifecycle is a container's lifecycle hooks: PostStart runs right after the container starts,
// PreStop before it is stopped. Nil handlers are not run.
type Lifecycle struct {
	PostStart *LifecycleHandler
	PreStop   *LifecycleHandler
}

// LifecycleHandler is one hook: exactly one of Exec, HTTPGet and Sleep is set.
type LifecycleHandler struct {
	Exec    *ExecAction
	HTTPGet *HTTPGetAction
	Sleep   *SleepAction
}

// ExecAction runs Command in the container (no shell).
type ExecAction struct {
	Command []string
}

// HTTPGetAction is a GET of Scheme://Host:Port/Path with Headers; Host empty: the pod's IP.
type HTTPGetAction struct {
	Host    string
	Port    int
	Path    string
	Scheme  string // "http" (default) or "https"
	Headers map[string]string
}

// SleepAction waits Seconds.
type SleepAction struct {
	Seconds int64
}

// HandlerRunner runs a lifecycle handler for a container. The message says why it failed (the
// command's output, the HTTP status and body start) and goes into the hook's event.
type HandlerRunner interface {
	Run(ctx context.Context, containerID string, pod *PodSpec, container *ContainerSpec, handler *LifecycleHandler) (msg string, err error)
}

// CommandRunner runs a command in a running container: the runtime's ExecSync.
type CommandRunner interface {
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecSyncResult, error)
}

// HTTPDoer sends an HTTP request: an *http.Client.
type HTTPDoer interface {
	Do(req *http.Request) (*http.Response, error)
}

// PodIPGetter returns the IP an httpGet hook of the container targets when it names no host.
type PodIPGetter func(ctx context.Context, containerID string) (string, error)

// Bounds of the hooks. A hook whose context has an earlier deadline (a preStop within the grace
// period) ends at that deadline.
var (
	// DefaultExecHookTimeout bounds an exec hook (the kubelet sets none: a hook that never
	// ends would hold the pod's sync forever).
	DefaultExecHookTimeout = 2 * time.Minute
	// DefaultHTTPHookTimeout bounds an httpGet hook, its response body included.
	DefaultHTTPHookTimeout = 10 * time.Second
)

// maxHookOutput caps what a failed hook's message keeps of the command's output or the response
// body.
const maxHookOutput = 4 << 10

// handlerRunner is the HandlerRunner of NewHandlerRunner.
type handlerRunner struct {
	commands CommandRunner
	http     HTTPDoer
	podIP    PodIPGetter
}

// NewHandlerRunner returns the runner of exec hooks through commands, httpGet hooks through doer
// to the pod's IP from podIP, and sleep hooks. A nil doer is a client that, as the kubelet's,
// checks no certificate, uses no proxy and follows no redirect to another host.
func NewHandlerRunner(commands CommandRunner, doer HTTPDoer, podIP PodIPGetter) HandlerRunner {
	if doer == nil {
		doer = &http.Client{
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(r *http.Request, via []*http.Request) error {
				if len(via) >= 10 || r.URL.Hostname() != via[0].URL.Hostname() {
					return http.ErrUseLastResponse
				}
				return nil
			},
		}
	}
	return &handlerRunner{commands: commands, http: doer, podIP: podIP}
}

// Run runs the one action of handler.
func (r *handlerRunner) Run(ctx context.Context, containerID string, pod *PodSpec, container *ContainerSpec, handler *LifecycleHandler) (string, error) {
	switch {
	case handler == nil:
		return "", errors.New("no lifecycle handler")
	case handler.Exec != nil:
		return r.runExec(ctx, containerID, handler.Exec)
	case handler.HTTPGet != nil:
		return r.runHTTPGet(ctx, containerID, handler.HTTPGet)
	case handler.Sleep != nil:
		return runSleep(ctx, handler.Sleep)
	}
	return "", errors.New("lifecycle handler has no action (exec, httpGet or sleep)")
}

// hookTimeout is def, or less when ctx ends sooner.
func hookTimeout(ctx context.Context, def time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < def {
			return max(left, time.Millisecond)
		}
	}
	return def
}

func (r *handlerRunner) runExec(ctx context.Context, containerID string, a *ExecAction) (string, error) {
	if r.commands == nil {
		return "", errors.New("exec hooks need a command runner")
	}
	if len(a.Command) == 0 {
		return "", errors.New("exec hook has no command")
	}
	timeout := hookTimeout(ctx, DefaultExecHookTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := r.commands.ExecSync(ctx, containerID, a.Command, timeout)
	var out string
	if res != nil {
		out = hookOutput(res.Stdout, res.Stderr)
	}
	if err != nil {
		msg := fmt.Sprintf("Exec lifecycle hook (%s) for Container %q failed - error: %v, message: %q", a.Command, containerID, err, out)
		return msg, fmt.Errorf("exec %q: %w", strings.Join(a.Command, " "), err)
	}
	if res.ExitCode != 0 {
		msg := fmt.Sprintf("Exec lifecycle hook (%s) for Container %q failed - exit code %d, message: %q", a.Command, containerID, res.ExitCode, out)
		return msg, fmt.Errorf("exec %q: exit code %d", strings.Join(a.Command, " "), res.ExitCode)
	}
	return "", nil
}

func (r *handlerRunner) runHTTPGet(ctx context.Context, containerID string, a *HTTPGetAction) (string, error) {
	host := a.Host
	if host == "" {
		if r.podIP == nil {
			return "", errors.New("httpGet hook without host: no pod IP getter")
		}
		ip, err := r.podIP(ctx, containerID)
		if err != nil {
			return "", fmt.Errorf("httpGet hook: pod IP: %w", err)
		}
		if ip == "" {
			return "", errors.New("httpGet hook: the pod has no IP")
		}
		host = ip
	}
	scheme := strings.ToLower(a.Scheme)
	if scheme == "" {
		scheme = "http"
	}
	path := a.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(a.Port)) + path
	ctx, cancel := context.WithTimeout(ctx, hookTimeout(ctx, DefaultHTTPHookTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("httpGet hook: %w", err)
	}
	req.Header.Set("User-Agent", "cri-shim-lifecycle-hook")
	for k, v := range a.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		msg := fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q failed - error: %v", path, containerID, err)
		return msg, fmt.Errorf("httpGet %s: %w", url, err)
	}
	defer resp.Body.Close()
	// Read within the same deadline, and only the start: a slow or endless body cannot hold the hook.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHookOutput))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		msg := fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q failed - status %d, message: %q", path, containerID, resp.StatusCode, strings.TrimSpace(string(body)))
		return msg, fmt.Errorf("httpGet %s: HTTP status %d", url, resp.StatusCode)
	}
	return "", nil
}

func runSleep(ctx context.Context, a *SleepAction) (string, error) {
	t := time.NewTimer(time.Duration(a.Seconds) * time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("sleep hook of %ds ended early: %w", a.Seconds, ctx.Err())
	case <-t.C:
		return "", nil
	}
}

// hookOutput is the start of a command's output (stdout then stderr), at most maxHookOutput bytes.
func hookOutput(stdout, stderr []byte) string {
	b := make([]byte, 0, min(len(stdout)+len(stderr), maxHookOutput))
	b = append(b, stdout[:min(len(stdout), maxHookOutput)]...)
	b = append(b, stderr[:min(len(stderr), maxHookOutput-len(b))]...)
	return strings.TrimSpace(string(b))
}

// PodStatusReader is what PodIPFromRuntime reads: a container's sandbox, and the sandbox's IP.
type PodStatusReader interface {
	ContainerStatus(ctx context.Context, id string, verbose bool) (*ContainerDetails, error)
	PodSandboxStatus(ctx context.Context, id string, verbose bool) (*SandboxStatus, error)
}

// PodIPFromRuntime returns the IP of the container's pod from the runtime's status: the sandbox's
// primary IP, or 127.0.0.1 for a pod on the host network.
func PodIPFromRuntime(rt PodStatusReader) PodIPGetter {
	return func(ctx context.Context, containerID string) (string, error) {
		c, err := rt.ContainerStatus(ctx, containerID, false)
		if err != nil {
			return "", err
		}
		sb, err := rt.PodSandboxStatus(ctx, c.SandboxID, false)
		if err != nil {
			return "", err
		}
		if sb.HostNetwork {
			return "127.0.0.1", nil
		}
		return sb.IP, nil
	}
}
