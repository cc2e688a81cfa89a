package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/imageservice"
	"github.com/cri-shim/cri-shim/kuberuntime"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/cri-shim/cri-shim/server"
	"github.com/cri-shim/cri-shim/standalone"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const podsUsage = `usage: cri-shim pods [daemon flags] COMMAND
  apply FILE                      validate a Pod manifest and write it into static_pods_dir
  list                            list the standalone pods
  describe NAME                   status of the pod's containers and its events
  logs NAME [-c CONTAINER] [-f]   the container's log (-f: follow)
  delete NAME                     remove the manifest and wait for the pod to go
NAME is NAME or NAMESPACE/NAME (namespace "default").`

// startStandalonePods runs the pods of cfg.StaticPodsDir on the daemon's runtime (nothing when the
// key is empty) and returns what stops the manager; the pods keep running.
func startStandalonePods(ctx context.Context, cfg config.Config, rt *kuberuntime.ContainerdRuntime, images *imageservice.Service) (stop func(), protect server.ProtectFunc, err error) {
	if cfg.StaticPodsDir == "" {
		return func() {}, nil, nil
	}
	m, err := standalone.New(standalone.Options{
		Dir:         cfg.StaticPodsDir,
		StateDir:    cfg.StateDir,
		VolumeRoot:  filepath.Join(cfg.RootDir, "standalone", "volumes"),
		SeccompRoot: filepath.Join(cfg.RootDir, "seccomp"),
		// The file a sandbox without a DNS config copies: the base of the pods' DNS.
		HostResolvConf: sandbox.HostResolvConf,
		PodLogRoot:     cfg.StaticPodsLogDir,
		Runtime:        rt,
		RecursiveReadOnly: func() bool {
			return rt.HandlerFeatures(context.Background(), "").RecursiveReadOnlyMounts
		},
		Cache:            rt.PodStatusCache(),
		Images:           kuberuntime.NewImageServiceBackend(images),
		MaxParallelPulls: cfg.MaxConcurrentPulls,
		GC:               rt,
		GCPolicy: legacy.ContainerGCPolicy{MinAge: time.Duration(cfg.GCMinAge),
			MaxPerPodContainer: cfg.StaticPodsGCMaxPerPod, MaxContainers: cfg.GCMaxContainers},
		GCInterval: time.Duration(cfg.GCInterval),
	})
	if err != nil {
		return nil, nil, err
	}
	if err := standalone.EnsureDir(cfg.StaticPodsDir); err != nil {
		return nil, nil, err
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(mctx); err != nil {
			fmt.Fprintln(os.Stderr, "cri-shim: standalone pods:", err)
		}
	}()
	if cfg.StaticPodsProtected {
		protect = m.Protect
	}
	return func() { cancel(); <-done }, protect, nil
}

// podsMain is `cri-shim pods ...`: it writes manifests into static_pods_dir and reads the pods
// over the CRI socket and their events from the daemon's state dir.
func podsMain(ctx context.Context, cfg config.Config, args []string) error {
	if len(args) == 0 {
		return errors.New(podsUsage)
	}
	cmd, args := args[0], args[1:]
	if cmd == "apply" {
		if len(args) != 1 {
			return errors.New("usage: cri-shim pods apply FILE")
		}
		return podsApply(cfg, args[0], os.Stdout)
	}
	if cfg.StaticPodsDir == "" {
		return errors.New("static_pods_dir is empty: standalone pods are off")
	}
	c, closeConn, err := dialCRI(cfg.Socket)
	if err != nil {
		return err
	}
	defer closeConn()
	switch cmd {
	case "list", "ls":
		if len(args) != 0 {
			return errors.New("usage: cri-shim pods list")
		}
		return podsList(ctx, cfg, c, os.Stdout)
	case "describe":
		if len(args) != 1 {
			return errors.New("usage: cri-shim pods describe NAME")
		}
		return podsDescribe(ctx, cfg, c, args[0], os.Stdout)
	case "logs":
		name, container, follow := "", "", false
		for i := 0; i < len(args); i++ {
			switch a := args[i]; {
			case a == "-f" || a == "--follow":
				follow = true
			case a == "-c" || a == "--container":
				if i+1 >= len(args) {
					return errors.New("-c needs a container name")
				}
				i++
				container = args[i]
			case strings.HasPrefix(a, "-c="), strings.HasPrefix(a, "--container="):
				container = a[strings.Index(a, "=")+1:]
			case strings.HasPrefix(a, "-"):
				return fmt.Errorf("unknown flag %s", a)
			case name == "":
				name = a
			default:
				return errors.New("usage: cri-shim pods logs NAME [-c CONTAINER] [-f]")
			}
		}
		if name == "" {
			return errors.New("usage: cri-shim pods logs NAME [-c CONTAINER] [-f]")
		}
		return podsLogs(ctx, c, name, container, follow, os.Stdout)
	case "delete", "rm":
		if len(args) != 1 {
			return errors.New("usage: cri-shim pods delete NAME")
		}
		return podsDelete(ctx, cfg, c, args[0], 2*time.Minute, os.Stdout)
	}
	return fmt.Errorf("unknown pods command %q\n%s", cmd, podsUsage)
}

func dialCRI(socket string) (runtime.RuntimeServiceClient, func(), error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, nil, fmt.Errorf("CRI socket %s: %w (is the daemon running?)", socket, err)
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtime.NewRuntimeServiceClient(conn), func() { conn.Close() }, nil
}

func splitName(arg string) (namespace, name string) {
	if ns, n, ok := strings.Cut(arg, "/"); ok {
		return ns, n
	}
	return standalone.DefaultNamespace, arg
}

// manifestsOf returns the manifests of the dir that define namespace/name.
func manifestsOf(dir, namespace, name string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		pod, err := standalone.ParseManifest(data)
		if err == nil && pod.Name == name && pod.Namespace == namespace {
			out = append(out, path)
		}
	}
	return out
}

// podsApply validates the manifest as the daemon will and writes it atomically into the dir as
// NAMESPACE_NAME.yaml (replacing the file that already defines that pod).
func podsApply(cfg config.Config, file string, out io.Writer) error {
	if cfg.StaticPodsDir == "" {
		return errors.New("static_pods_dir is empty: standalone pods are off")
	}
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return err
	}
	pod, err := standalone.ParseManifest(data)
	if err != nil {
		return err
	}
	if _, err := standalone.Convert(pod, file, standalone.ConvertOptions{VolumeRoot: "/validate", SeccompRoot: filepath.Join(cfg.RootDir, "seccomp"),
		RecursiveReadOnly: kuberuntime.RecursiveReadOnlySupported}); err != nil {
		return fmt.Errorf("invalid pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if err := standalone.EnsureDir(cfg.StaticPodsDir); err != nil {
		return err
	}
	target := filepath.Join(cfg.StaticPodsDir, pod.Namespace+"_"+pod.Name+".yaml")
	existing := manifestsOf(cfg.StaticPodsDir, pod.Namespace, pod.Name)
	for _, p := range existing {
		if p != target {
			target = p // keep the file that already defines the pod
		}
	}
	if err := standalone.WriteFileAtomic(target, data, 0o600); err != nil {
		return err
	}
	verb := "created"
	if len(existing) > 0 {
		verb = "configured"
	}
	fmt.Fprintf(out, "pod/%s %s (%s)\n", pod.Name, verb, target)
	return nil
}

// podView is a standalone pod as the CLI shows it.
type podView struct {
	namespace, name string
	sandbox         *runtime.PodSandbox
	containers      []*runtime.Container
}

func listViews(ctx context.Context, c runtime.RuntimeServiceClient) (map[string]*podView, error) {
	owner := map[string]string{standalone.LabelOwner: standalone.OwnerValue}
	sbs, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{LabelSelector: owner}})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	views := map[string]*podView{}
	for _, sb := range sbs.Items {
		key := sb.Metadata.Namespace + "/" + sb.Metadata.Name
		v := views[key]
		if v == nil {
			v = &podView{namespace: sb.Metadata.Namespace, name: sb.Metadata.Name}
			views[key] = v
		}
		if v.sandbox == nil || sb.Metadata.Attempt > v.sandbox.Metadata.Attempt {
			v.sandbox = sb
		}
	}
	cs, err := c.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{LabelSelector: owner}})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, ctr := range cs.Containers {
		for _, v := range views {
			if v.sandbox.Id == ctr.PodSandboxId {
				v.containers = append(v.containers, ctr)
			}
		}
	}
	return views, nil
}

// newestByName returns each container name's newest attempt.
func newestByName(cs []*runtime.Container) map[string]*runtime.Container {
	out := map[string]*runtime.Container{}
	for _, c := range cs {
		if cur, ok := out[c.Metadata.Name]; !ok || c.Metadata.Attempt > cur.Metadata.Attempt {
			out[c.Metadata.Name] = c
		}
	}
	return out
}

func age(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// podPhase sums the pod up as kubectl does: CrashLoopBackOff, Running, Completed, Error, Pending.
func podPhase(v *podView, rec *standalone.PodRecord) string {
	if v.sandbox == nil {
		return "Pending"
	}
	if v.sandbox.State != runtime.PodSandboxState_SANDBOX_READY {
		return "Stopped"
	}
	if rec != nil && strings.Contains(rec.SyncError, legacy.ErrCrashLoopBackOff.Error()) {
		return "CrashLoopBackOff"
	}
	if rec != nil && strings.Contains(rec.SyncError, "ImagePull") {
		return "ImagePullBackOff"
	}
	byName := newestByName(v.containers)
	running, failed, done := 0, 0, 0
	for _, c := range byName {
		if c.Labels[legacy.LabelContainerType] == "init" {
			continue
		}
		switch c.State {
		case runtime.ContainerState_CONTAINER_RUNNING:
			running++
		case runtime.ContainerState_CONTAINER_EXITED:
			done++
		}
	}
	switch {
	case running > 0:
		return "Running"
	case done > 0 && failed == 0:
		return "Completed"
	}
	return "Pending"
}

func podsList(ctx context.Context, cfg config.Config, c runtime.RuntimeServiceClient, out io.Writer) error {
	views, err := listViews(ctx, c)
	if err != nil {
		return err
	}
	// Manifests not running yet show as Pending.
	entries, _ := os.ReadDir(cfg.StaticPodsDir)
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(cfg.StaticPodsDir, e.Name()))
		if err != nil {
			continue
		}
		if pod, err := standalone.ParseManifest(data); err == nil {
			if _, ok := views[pod.Namespace+"/"+pod.Name]; !ok {
				views[pod.Namespace+"/"+pod.Name] = &podView{namespace: pod.Namespace, name: pod.Name}
			}
		}
	}
	keys := make([]string, 0, len(views))
	for k := range views {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tREADY\tSTATUS\tRESTARTS\tAGE\tIP")
	for _, k := range keys {
		v := views[k]
		rec, _ := standalone.ReadRecord(cfg.StateDir, v.namespace, v.name)
		ready, total, restarts := 0, 0, uint32(0)
		for _, ctr := range newestByName(v.containers) {
			if ctr.Labels[legacy.LabelContainerType] == "init" {
				continue
			}
			total++
			restarts += ctr.Metadata.Attempt
			if ctr.State == runtime.ContainerState_CONTAINER_RUNNING && (rec == nil || rec.Ready[ctr.Metadata.Name]) {
				ready++
			}
		}
		ageS, ip := "-", "-"
		if v.sandbox != nil {
			ageS = age(time.Unix(0, v.sandbox.CreatedAt))
			if st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: v.sandbox.Id}); err == nil {
				if ipv := st.GetStatus().GetNetwork().GetIp(); ipv != "" {
					ip = ipv
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%d\t%s\t%s\n", v.namespace, v.name, ready, total, podPhase(v, rec), restarts, ageS, ip)
	}
	return tw.Flush()
}

func podsDescribe(ctx context.Context, cfg config.Config, c runtime.RuntimeServiceClient, arg string, out io.Writer) error {
	ns, name := splitName(arg)
	views, err := listViews(ctx, c)
	if err != nil {
		return err
	}
	v := views[ns+"/"+name]
	rec, recErr := standalone.ReadRecord(cfg.StateDir, ns, name)
	if v == nil && recErr != nil {
		return fmt.Errorf("pod %s/%s: not found", ns, name)
	}
	fmt.Fprintf(out, "Name:        %s\nNamespace:   %s\n", name, ns)
	if rec != nil {
		fmt.Fprintf(out, "UID:         %s\nManifest:    %s\n", rec.UID, rec.Source)
	}
	if v != nil && v.sandbox != nil {
		fmt.Fprintf(out, "Sandbox:     %s (attempt %d, %s)\n", v.sandbox.Id, v.sandbox.Metadata.Attempt, strings.TrimPrefix(v.sandbox.State.String(), "SANDBOX_"))
		if st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: v.sandbox.Id}); err == nil {
			fmt.Fprintf(out, "IP:          %s\n", st.GetStatus().GetNetwork().GetIp())
		}
		fmt.Fprintf(out, "Started:     %s\n", time.Unix(0, v.sandbox.CreatedAt).Format(time.RFC3339))
		fmt.Fprintf(out, "Status:      %s\n", podPhase(v, rec))
		fmt.Fprintln(out, "Containers:")
		byName := newestByName(v.containers)
		for _, n := range sortedNames(byName) {
			ctr := byName[n]
			st, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctr.Id})
			if err != nil {
				continue
			}
			s := st.Status
			kind := ""
			if ctr.Labels[legacy.LabelContainerType] == "init" {
				kind = " (init)"
			}
			fmt.Fprintf(out, "  %s%s:\n    Container ID:  %s\n    Image:         %s\n", n, kind, s.Id, s.GetImage().GetImage())
			switch s.State {
			case runtime.ContainerState_CONTAINER_RUNNING:
				fmt.Fprintf(out, "    State:         Running since %s\n", time.Unix(0, s.StartedAt).Format(time.RFC3339))
			case runtime.ContainerState_CONTAINER_EXITED:
				fmt.Fprintf(out, "    State:         Terminated (%s), exit code %d, finished %s\n", s.Reason, s.ExitCode, time.Unix(0, s.FinishedAt).Format(time.RFC3339))
			default:
				fmt.Fprintf(out, "    State:         %s\n", strings.TrimPrefix(s.State.String(), "CONTAINER_"))
			}
			ready := s.State == runtime.ContainerState_CONTAINER_RUNNING && (rec == nil || rec.Ready[n])
			fmt.Fprintf(out, "    Ready:         %v\n    Restart Count: %d\n    Log:           %s\n", ready, s.GetMetadata().GetAttempt(), s.LogPath)
		}
	}
	if rec != nil {
		if rec.SyncError != "" {
			fmt.Fprintf(out, "Last sync error: %s\n", rec.SyncError)
		}
		fmt.Fprintln(out, "Events:")
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TIME\tLAST SEEN\tTYPE\tREASON\tCOUNT\tMESSAGE")
		for _, e := range rec.Events {
			fmt.Fprintf(tw, "  %s\t%s ago\t%s\t%s\t%d\t%s\n", e.FirstTime.Format("15:04:05.000"), age(e.LastTime), e.Type, e.Reason, e.Count, e.Message)
		}
		tw.Flush()
	}
	return nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// podsLogs prints the container's CRI log (its newest attempt), following it with -f.
func podsLogs(ctx context.Context, c runtime.RuntimeServiceClient, arg, container string, follow bool, out io.Writer) error {
	ns, name := splitName(arg)
	views, err := listViews(ctx, c)
	if err != nil {
		return err
	}
	v := views[ns+"/"+name]
	if v == nil {
		return fmt.Errorf("pod %s/%s: not found", ns, name)
	}
	byName := newestByName(v.containers)
	if container == "" {
		var regular []string
		for _, n := range sortedNames(byName) {
			if byName[n].Labels[legacy.LabelContainerType] != "init" {
				regular = append(regular, n)
			}
		}
		if len(regular) != 1 {
			return fmt.Errorf("pod %s/%s has containers %v: choose one with -c", ns, name, regular)
		}
		container = regular[0]
	}
	ctr, ok := byName[container]
	if !ok {
		return fmt.Errorf("pod %s/%s: no container %q", ns, name, container)
	}
	st, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctr.Id})
	if err != nil {
		return err
	}
	if st.Status.LogPath == "" {
		return fmt.Errorf("container %s has no log", container)
	}
	return copyCRILog(ctx, st.Status.LogPath, follow, out)
}

// copyCRILog writes the content of a CRI log file ("TIME STREAM P|F CONTENT" lines) to out;
// with follow it keeps reading until ctx ends.
func copyCRILog(ctx context.Context, path string, follow bool, out io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var pending []byte
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = append(pending, line...)
			pending = nil
			writeCRILine(line, out)
		} else if len(line) > 0 {
			pending = append(pending, line...)
		}
		if err == io.EOF {
			if !follow {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
	}
}

func writeCRILine(line []byte, out io.Writer) {
	fields := bytes.SplitN(bytes.TrimSuffix(line, []byte("\n")), []byte(" "), 4)
	if len(fields) != 4 {
		return
	}
	out.Write(fields[3])
	if string(fields[2]) != "P" {
		out.Write([]byte("\n"))
	}
}

// podsDelete removes the pod's manifests and waits for the daemon to remove the pod.
func podsDelete(ctx context.Context, cfg config.Config, c runtime.RuntimeServiceClient, arg string, timeout time.Duration, out io.Writer) error {
	ns, name := splitName(arg)
	files := manifestsOf(cfg.StaticPodsDir, ns, name)
	if len(files) == 0 {
		return fmt.Errorf("pod %s/%s: no manifest in %s", ns, name, cfg.StaticPodsDir)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		views, err := listViews(ctx, c)
		if err != nil {
			return err
		}
		if _, ok := views[ns+"/"+name]; !ok {
			fmt.Fprintf(out, "pod/%s deleted\n", name)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod %s/%s: manifest removed but the pod still exists after %s", ns, name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
