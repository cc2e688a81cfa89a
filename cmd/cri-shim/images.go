package main

import (
	"context"
	"os"
	"time"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/imageservice"
)

// newImageService returns the image service on the connected containerd.
func newImageService(b *backend, cfg config.Config) (*imageservice.Service, error) {
	root := ""
	if cfg.ContainerdMode == config.ModeManaged {
		root = managedConfig(cfg).Root
	}
	_, _, snapshotters, err := runtimeHandlers(cfg)
	if err != nil {
		return nil, err
	}
	return imageservice.New(b.client, imageservice.Config{
		RuntimeSnapshotters:    snapshotters,
		Namespace:              cfg.ContainerdNamespace,
		RegistryConfigPath:     cfg.RegistryConfigPath,
		MaxConcurrentPulls:     cfg.MaxConcurrentPulls,
		MaxConcurrentDownloads: cfg.MaxConcurrentDownloads,
		PullProgressTimeout:    time.Duration(cfg.ImagePullProgressTimeout),
		PinnedImages:           []string{cfg.SandboxImage},
		PullViaTransfer:        cfg.ImagePullViaTransfer,
		ContainerdRoot:         root,
	})
}

// pullMain is `cri-shim pull`: it pulls through the containerd of containerd_mode and the
// model's image puller, as the daemon would.
func pullMain(ctx context.Context, cfg config.Config, args []string) error {
	// Credentials first: a password asked for or piped in is read before containerd starts.
	pa, err := parsePullArgs(args, stdCredsInput())
	if err != nil {
		return err
	}
	for _, d := range []string{cfg.RootDir, cfg.StateDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	b, err := connectContainerd(ctx, cfg, false, nil)
	if err != nil {
		return err
	}
	defer b.close()
	svc, err := newImageService(b, cfg)
	if err != nil {
		return err
	}
	defer svc.Close()
	return runPull(ctx, svc, pa, os.Stdout)
}
