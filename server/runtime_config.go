package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeConfig reports the cgroup driver (Options.CgroupDriver), which the kubelet adopts.
func (s *RuntimeServer) RuntimeConfig(ctx context.Context, req *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if s.opts.CgroupDriver.IsSystemd() {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{
		Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver},
	}, nil
}

// UpdateRuntimeConfig takes the node's pod CIDRs, which the kubelet sends once the node has them
// (and again when they change): they are validated, recorded, logged when they change and reported
// by a verbose Status. Pod addresses come from the CNI config, which cri-shim does not template, so
// nothing else changes; answering Unimplemented instead makes the kubelet retry and log it forever.
func (s *RuntimeServer) UpdateRuntimeConfig(ctx context.Context, req *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	cidrs, err := parsePodCIDRs(req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if prev, changed := s.podCIDRs.set(cidrs); changed {
		logrus.WithFields(logrus.Fields{"podCIDRs": cidrs, "previous": prev}).Info("node pod CIDRs updated by the kubelet")
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}

// parsePodCIDRs splits the kubelet's comma-separated pod CIDRs (one per IP family) and checks each
// is a prefix; an empty string is none.
func parsePodCIDRs(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var out []string
	for _, c := range strings.Split(v, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("pod CIDR %q: %v", c, err)
		}
		out = append(out, p.Masked().String())
	}
	return out, nil
}

// podCIDRs holds the pod CIDRs last set.
type podCIDRs struct {
	mu    sync.Mutex
	cidrs []string
}

// set records cidrs and returns the previous ones and whether they differ.
func (p *podCIDRs) set(cidrs []string) ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.cidrs
	p.cidrs = cidrs
	return prev, !slices.Equal(prev, cidrs)
}

func (p *podCIDRs) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.cidrs)
}

// verboseInfo is a verbose Status's info: "config" (the effective config as JSON, with
// "sandboxImage" added under the name kubeadm reads), "podCIDRs" (from UpdateRuntimeConfig) and
// the host's confinement ("apparmor", "selinux": Options.Confinement).
func (s *RuntimeServer) verboseInfo() (map[string]string, error) {
	var cfg any
	if s.opts.Config != nil {
		cfg = s.opts.Config()
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	if s.opts.SandboxImage != "" {
		var fields map[string]any
		if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
			fields = map[string]any{}
		}
		fields["sandboxImage"] = s.opts.SandboxImage
		if b, err = json.Marshal(fields); err != nil {
			return nil, err
		}
	}
	cidrs, err := json.Marshal(append([]string{}, s.podCIDRs.get()...))
	if err != nil {
		return nil, err
	}
	info := map[string]string{"config": string(b), "podCIDRs": string(cidrs)}
	if s.opts.Confinement != nil {
		for k, v := range s.opts.Confinement() {
			j, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("status info %q: %w", k, err)
			}
			info[k] = string(j)
		}
	}
	return info, nil
}
