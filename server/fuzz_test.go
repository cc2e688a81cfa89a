package server

import (
	"context"
	"testing"

	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The fuzz targets decode a CRI request from the fuzzer's bytes and send it through the handler
// on the fake runtime. The handlers are called directly (not through gRPC and its recovering
// interceptor) so that a panic fails the target. The property: no panic, and every error is a
// gRPC status whose code is not Unknown (nor Internal, which the handlers only use for panics).
// `make fuzz` runs each target for a bounded time; plain `go test` runs the seeds.

// fuzzWorld is a fresh fake runtime with one ready sandbox and, in it, one created and one running
// container.
type fuzzWorld struct {
	srv                       *RuntimeServer
	fake                      *legacytest.FakeRuntime
	sandbox, created, running string
}

func newFuzzWorld(t *testing.T) *fuzzWorld {
	t.Helper()
	ctx := context.Background()
	fake := legacytest.NewFakeRuntime()
	w := &fuzzWorld{fake: fake, srv: NewRuntimeServer(Options{Backend: fake, Version: "fuzz", Streaming: &fakeStreams{}})}
	sb, err := w.srv.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("fuzz")})
	if err != nil {
		t.Fatal(err)
	}
	w.sandbox = sb.PodSandboxId
	for _, name := range []string{"created", "running"} {
		cr, err := w.srv.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: w.sandbox, Config: containerConfig(name)})
		if err != nil {
			t.Fatal(err)
		}
		if name == "created" {
			w.created = cr.ContainerId
			continue
		}
		w.running = cr.ContainerId
		if _, err := w.srv.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: w.running}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// pick replaces a non-empty fuzzed ID by a known one, chosen by which (so that requests also reach
// the model's objects, not only NotFound).
func pick(id string, which uint8, known ...string) string {
	if id == "" || int(which) == 0 || int(which) > len(known) {
		return id
	}
	return known[which-1]
}

// checkErr fails on an error that is not a gRPC status, or whose code is Unknown or Internal.
func checkErr(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%s: error is not a gRPC status: %T %v", what, err, err)
	}
	if st.Code() == codes.Unknown || st.Code() == codes.Internal {
		t.Fatalf("%s: error with code %s: %v", what, st.Code(), err)
	}
}

func marshalSeed(f *testing.F, m proto.Message) []byte {
	f.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func fuzzPodConfig() *runtime.PodSandboxConfig {
	cfg := podConfig("web")
	cfg.Hostname = "web"
	cfg.LogDirectory = "/var/log/pods/ns_web_uid"
	cfg.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"ns.svc.cluster.local"}, Options: []string{"ndots:5"}}
	cfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 80, HostPort: 8080, HostIp: "127.0.0.1"}}
	cfg.Linux = &runtime.LinuxPodSandboxConfig{
		CgroupParent: "/kubepods/besteffort/poduid",
		Sysctls:      map[string]string{"net.ipv4.ip_forward": "1"},
		SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_CONTAINER},
			RunAsUser:        &runtime.Int64Value{Value: 1000},
		},
	}
	return cfg
}

func FuzzRunPodSandbox(f *testing.F) {
	f.Add(marshalSeed(f, &runtime.RunPodSandboxRequest{Config: podConfig("a")}))
	f.Add(marshalSeed(f, &runtime.RunPodSandboxRequest{Config: fuzzPodConfig(), RuntimeHandler: "runc"}))
	f.Add(marshalSeed(f, &runtime.RunPodSandboxRequest{Config: podConfig("fuzz")})) // a duplicate of the world's
	f.Add(marshalSeed(f, &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "a/b"}}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &runtime.RunPodSandboxRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		w := newFuzzWorld(t)
		_, err := w.srv.RunPodSandbox(context.Background(), req)
		checkErr(t, "RunPodSandbox", err)
	})
}

func fuzzContainerConfig() *runtime.ContainerConfig {
	cfg := containerConfig("app")
	cfg.Command = []string{"/bin/sh"}
	cfg.Args = []string{"-c", "sleep 1000"}
	cfg.WorkingDir = "/work"
	cfg.Envs = []*runtime.KeyValue{{Key: "A", Value: []byte("b")}}
	cfg.Annotations = map[string]string{"x": "y"}
	cfg.Mounts = []*runtime.Mount{{ContainerPath: "/data", HostPath: "/tmp", Readonly: true}}
	cfg.Devices = []*runtime.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}}
	cfg.Linux = &runtime.LinuxContainerConfig{
		Resources: &runtime.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 1 << 30, CpuQuota: 50000, CpuPeriod: 100000},
		SecurityContext: &runtime.LinuxContainerSecurityContext{
			Capabilities:   &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"}},
			RunAsUser:      &runtime.Int64Value{Value: 1000},
			Seccomp:        &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault},
			ReadonlyRootfs: true,
		},
	}
	return cfg
}

func FuzzCreateContainer(f *testing.F) {
	f.Add(marshalSeed(f, &runtime.CreateContainerRequest{PodSandboxId: "s", Config: containerConfig("a"), SandboxConfig: podConfig("fuzz")}), uint8(1))
	f.Add(marshalSeed(f, &runtime.CreateContainerRequest{PodSandboxId: "s", Config: fuzzContainerConfig(), SandboxConfig: podConfig("fuzz")}), uint8(1))
	f.Add(marshalSeed(f, &runtime.CreateContainerRequest{PodSandboxId: "s", Config: containerConfig("running")}), uint8(1))
	f.Add(marshalSeed(f, &runtime.CreateContainerRequest{PodSandboxId: "unknown", Config: containerConfig("a")}), uint8(0))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		req := &runtime.CreateContainerRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		w := newFuzzWorld(t)
		req.PodSandboxId = pick(req.PodSandboxId, which, w.sandbox)
		_, err := w.srv.CreateContainer(context.Background(), req)
		checkErr(t, "CreateContainer", err)
	})
}

func FuzzExec(f *testing.F) {
	f.Add(marshalSeed(f, &runtime.ExecRequest{ContainerId: "c", Cmd: []string{"sh"}, Stdin: true, Stdout: true, Tty: true}), uint8(2))
	f.Add(marshalSeed(f, &runtime.ExecRequest{ContainerId: "c", Cmd: []string{"ls", "-l"}, Stdout: true, Stderr: true}), uint8(1))
	f.Add(marshalSeed(f, &runtime.ExecRequest{ContainerId: "c", Cmd: []string{"ls"}}), uint8(2))
	f.Add(marshalSeed(f, &runtime.ExecRequest{ContainerId: "c0", Cmd: []string{"ls"}, Stdout: true}), uint8(0))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		req := &runtime.ExecRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		w := newFuzzWorld(t)
		req.ContainerId = pick(req.ContainerId, which, w.created, w.running)
		ctx := context.Background()
		_, err := w.srv.Exec(ctx, req)
		checkErr(t, "Exec", err)
		// The same fields as an Attach and as an ExecSync.
		_, err = w.srv.Attach(ctx, &runtime.AttachRequest{ContainerId: req.ContainerId, Stdin: req.Stdin, Tty: req.Tty, Stdout: req.Stdout, Stderr: req.Stderr})
		checkErr(t, "Attach", err)
		_, err = w.srv.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: req.ContainerId, Cmd: req.Cmd, Timeout: int64(int8(which)) - 1})
		checkErr(t, "ExecSync", err)
	})
}

func FuzzPortForward(f *testing.F) {
	f.Add(marshalSeed(f, &runtime.PortForwardRequest{PodSandboxId: "s", Port: []int32{80, 443}}), uint8(1))
	f.Add(marshalSeed(f, &runtime.PortForwardRequest{PodSandboxId: "s", Port: []int32{0, 70000, -1}}), uint8(1))
	f.Add(marshalSeed(f, &runtime.PortForwardRequest{PodSandboxId: "0000"}), uint8(0))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		req := &runtime.PortForwardRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		w := newFuzzWorld(t)
		req.PodSandboxId = pick(req.PodSandboxId, which, w.sandbox)
		if which%2 == 0 && req.PodSandboxId == w.sandbox {
			// Also a sandbox that is not ready.
			if _, err := w.srv.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: w.sandbox}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := w.srv.PortForward(context.Background(), req)
		checkErr(t, "PortForward", err)
	})
}

func FuzzPullImage(f *testing.F) {
	f.Add(marshalSeed(f, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox"}}))
	f.Add(marshalSeed(f, &runtime.PullImageRequest{
		Image:         &runtime.ImageSpec{Image: "registry.example.com/a/b:1@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Annotations: map[string]string{"a": "b"}},
		Auth:          &runtime.AuthConfig{Username: "u", Password: "p", ServerAddress: "registry.example.com"},
		SandboxConfig: podConfig("fuzz"),
	}))
	f.Add(marshalSeed(f, &runtime.PullImageRequest{Image: &runtime.ImageSpec{}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &runtime.PullImageRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		s := NewImageServer(&fakeImageService{})
		ctx := context.Background()
		_, err := s.PullImage(ctx, req)
		checkErr(t, "PullImage", err)
		_, err = s.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: req.Image})
		checkErr(t, "ImageStatus", err)
		_, err = s.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: req.Image})
		checkErr(t, "RemoveImage", err)
	})
}
