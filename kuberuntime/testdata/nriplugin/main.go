// Command nriplugin is a pre-installed NRI plugin for the integration tests: the runtime launches
// it from its plugin dir; it sets PREINSTALLED=<its config> in every container it is asked about.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

type plugin struct{ value string }

func (p *plugin) Configure(_ context.Context, config, _, _ string) (api.EventMask, error) {
	p.value = strings.TrimSpace(config)
	if p.value == "" {
		p.value = "unconfigured"
	}
	return 0, nil
}

func (p *plugin) CreateContainer(_ context.Context, _ *api.PodSandbox, _ *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	adj := &api.ContainerAdjustment{}
	adj.AddEnv("PREINSTALLED", p.value)
	return adj, nil, nil
}

func main() {
	s, err := stub.New(&plugin{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
