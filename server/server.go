// Package server is the CRI gRPC front of cri-shim: it validates requests, converts between CRI
// messages and the model in legacy/, and maps errors to gRPC codes. It never talks to containerd.
package server

import (
	"context"

	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeName is what Version reports as the runtime's name.
const RuntimeName = "cri-shim"

// kubeletAPIVersion is the version of the kubelet's runtime API, which CRI's Version reports.
const kubeletAPIVersion = "0.1.0"

// MaxMsgSize is the largest gRPC message the server receives or sends (16 MiB, as the kubelet's
// CRI client): responses that could be larger (ExecSync) are cut to fit.
const MaxMsgSize = 16 << 20

// Backend is what the runtime service needs of the model.
type Backend interface {
	Status(ctx context.Context) []legacy.RuntimeCondition
	// HasRuntimeHandler tells whether pods may name the runtime handler ("" is the default).
	HasRuntimeHandler(handler string) bool
	legacy.SandboxManager
	legacy.ContainerManager
	legacy.StatsProvider
	legacy.ContainerEventSource
	legacy.SandboxResourceUpdater
}

// Options configures the CRI services.
type Options struct {
	// Version is cri-shim's own version.
	Version string
	// Backend is the model the services run on.
	Backend Backend
	// Images serves the CRI ImageService; nil answers Unimplemented.
	Images runtime.ImageServiceServer
	// Config returns the effective daemon config (as a reload left it), returned as JSON by a
	// verbose Status; nil: none.
	Config func() any
	// RuntimeHandlers are the runtime handlers pods may name (the default one first).
	RuntimeHandlers []string
	// RecursiveReadOnlyMounts is advertised for every handler: the host's runc applies them.
	// Ignored when HandlerFeatures is set.
	RecursiveReadOnlyMounts bool
	// HandlerFeatures, when set, tells each handler's features (recursive read-only mounts, user
	// namespaces) as probed on this host.
	HandlerFeatures func(ctx context.Context, handler string) legacy.HandlerFeatures
	// Streaming hands out the URLs of Exec, Attach and PortForward (streaming.Server); nil
	// answers Unimplemented.
	Streaming StreamURLs
	// CgroupDriver is the driver RuntimeConfig reports, which the kubelet follows; the zero value
	// is cgroupfs.
	CgroupDriver cgroupdriver.Driver
	// Protected, when set, refuses with FailedPrecondition to stop, remove or update the resources
	// of the sandboxes and containers it protects (standalone pods, which cri-shim itself runs);
	// listing, status, exec and logs stay open.
	Protected ProtectFunc
	// SandboxImage is the pause image pods run; a verbose Status reports it as the config's
	// "sandboxImage", the key kubeadm and other tools read from a runtime's info.
	SandboxImage string
	// Confinement, when set, is the host's confinement as a verbose Status reports it: each entry
	// (AppArmor, SELinux: available or why not) is an info key with its value as JSON.
	Confinement func() map[string]any
}

// RuntimeServer implements CRI's RuntimeService. RPCs not implemented yet answer Unimplemented
// through the embedded type.
type RuntimeServer struct {
	runtime.UnimplementedRuntimeServiceServer
	opts Options
	// podCIDRs are what the kubelet last sent through UpdateRuntimeConfig.
	podCIDRs podCIDRs
}

// NewRuntimeServer returns the RuntimeService on opts.Backend.
func NewRuntimeServer(opts Options) *RuntimeServer {
	if len(opts.RuntimeHandlers) == 0 {
		opts.RuntimeHandlers = []string{"runc"}
	}
	return &RuntimeServer{opts: opts}
}

// NewGRPCServer returns a gRPC server with the CRI RuntimeService and ImageService registered and
// the logging/recovery interceptors installed.
func NewGRPCServer(opts Options) *grpc.Server {
	s := grpc.NewServer(
		grpc.ChainUnaryInterceptor(UnaryInterceptor),
		grpc.ChainStreamInterceptor(StreamInterceptor),
		grpc.MaxRecvMsgSize(MaxMsgSize),
		grpc.MaxSendMsgSize(MaxMsgSize),
		grpc.ForceServerCodecV2(newListCodec()), // list_encoding.go
	)
	runtime.RegisterRuntimeServiceServer(s, NewRuntimeServer(opts))
	images := opts.Images
	if images == nil {
		images = runtime.UnimplementedImageServiceServer{}
	}
	runtime.RegisterImageServiceServer(s, images)
	return s
}

// Version returns the runtime's name and version and the CRI API version.
func (s *RuntimeServer) Version(ctx context.Context, req *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           kubeletAPIVersion,
		RuntimeName:       RuntimeName,
		RuntimeVersion:    s.opts.Version,
		RuntimeApiVersion: "v1",
	}, nil
}

// Status reports RuntimeReady and NetworkReady, the runtime handlers and, when verbose, the
// effective config.
func (s *RuntimeServer) Status(ctx context.Context, req *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	var conds []*runtime.RuntimeCondition
	for _, c := range s.opts.Backend.Status(ctx) {
		conds = append(conds, &runtime.RuntimeCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message})
	}
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{Conditions: conds},
		Features: &runtime.RuntimeFeatures{
			SupplementalGroupsPolicy: true,
		},
	}
	for i, h := range s.opts.RuntimeHandlers {
		feat := &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: s.opts.RecursiveReadOnlyMounts}
		if s.opts.HandlerFeatures != nil {
			f := s.opts.HandlerFeatures(ctx, h)
			feat = &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: f.RecursiveReadOnlyMounts, UserNamespaces: f.UserNamespaces}
		}
		if i == 0 {
			// The empty name is the default handler.
			resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{Name: "", Features: feat})
		}
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtime.RuntimeHandler{Name: h, Features: feat})
	}
	if req.GetVerbose() {
		info, err := s.verboseInfo()
		if err != nil {
			return nil, err
		}
		resp.Info = info
	}
	return resp, nil
}
