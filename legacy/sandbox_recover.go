package legacy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// recover rebuilds the sandbox store from the pause containers in containerd, and removes what
// belongs to no sandbox (network namespaces, pod dirs).
func (r *ContainerdRuntime) recover(ctx context.Context) error {
	ctx = r.withNS(ctx)
	cs, err := r.client.Containers(ctx, fmt.Sprintf(`labels.%q==%q`, LabelKind, KindSandbox))
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, c := range cs {
		sb, err := r.loadSandbox(ctx, c)
		if err != nil {
			logrus.WithError(err).WithField("sandbox", c.ID()).Warn("recover sandbox: skipped")
			continue
		}
		known[sb.meta.ID] = true
		r.sandboxes.add(sb)
	}
	for _, dir := range []string{r.netnsDir(), r.sandboxesRoot(), r.sandboxesState()} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if known[e.Name()] {
				continue
			}
			p := filepath.Join(dir, e.Name())
			logrus.WithField("path", p).Info("removing what is left of an unknown sandbox")
			if dir == r.netnsDir() {
				if err := sandbox.RemoveNetNS(p); err != nil {
					logrus.WithError(err).Warn("remove stale netns")
				}
				continue
			}
			if dir == r.sandboxesState() {
				_ = sandbox.Files{Shm: filepath.Join(p, "shm"), Userns: filepath.Join(p, "userns")}.Cleanup()
			}
			os.RemoveAll(p)
		}
	}
	logrus.WithField("sandboxes", len(known)).Debug("sandbox store rebuilt")
	return nil
}

func (r *ContainerdRuntime) loadSandbox(ctx context.Context, c containerd.Container) (*podSandbox, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	ext, ok := info.Extensions[sandboxExtensionID]
	if !ok {
		return nil, fmt.Errorf("no sandbox metadata")
	}
	v, err := typeurl.UnmarshalAny(ext)
	if err != nil {
		return nil, fmt.Errorf("sandbox metadata: %w", err)
	}
	meta, ok := v.(*sandboxMetadata)
	if !ok {
		return nil, fmt.Errorf("sandbox metadata of type %T", v)
	}
	config := &runtime.PodSandboxConfig{}
	if err := proto.Unmarshal(meta.Config, config); err != nil {
		return nil, fmt.Errorf("sandbox config: %w", err)
	}
	hostIPC := config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE
	sb := &podSandbox{
		meta:   *meta,
		config: config,
		files:  sandbox.PodFiles(r.SandboxRootDir(meta.ID), r.SandboxStateDir(meta.ID), hostIPC),
		state:  SandboxStateNotReady,
	}
	// Until a stop tears it down, assume the network may hold something (an IP lease, port
	// mappings): CNI DEL is harmless when it holds nothing.
	sb.netUp = !sb.hostNetwork()
	task, err := c.Task(ctx, nil)
	if err != nil {
		return sb, nil // no task: stopped
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status != containerd.Running {
		return sb, nil
	}
	if !meta.NetworkReady {
		// Half made when the daemon died: NotReady, for the kubelet to stop and remove.
		return sb, nil
	}
	exitCh, err := task.Wait(r.bg)
	if err != nil {
		return sb, nil
	}
	sb.state, sb.pid = SandboxStateReady, task.Pid()
	r.monitorExit(sb, exitCh)
	return sb, nil
}
