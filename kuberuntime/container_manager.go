package kuberuntime

import (
	"context"
	"fmt"
	"path/filepath"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/distribution/reference"
	"github.com/opencontainers/image-spec/identity"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/proto"
)

var _ legacy.ContainerManager = (*ContainerdRuntime)(nil)

// containerState is the container manager's part of the runtime, created by initContainers.
type containerState struct {
	store *containerStore
}

// ctrs returns the container manager's state of r.
func (r *ContainerdRuntime) ctrs() *containerState {
	r.ctrsOnce.Do(func() { r.ctrsState = &containerState{store: newContainerStore()} })
	return r.ctrsState
}

func (r *ContainerdRuntime) containersRoot() string {
	return filepath.Join(r.opts.RootDir, "containers")
}

func (r *ContainerdRuntime) containersState() string {
	return filepath.Join(r.opts.StateDir, "containers")
}

// containerImage is the image a container runs, resolved from the config's reference.
type containerImage struct {
	// Name is the containerd image record to take the snapshot from.
	Name       string
	ID         string
	RepoTag    string
	RepoDigest string
	Config     imagespec.ImageConfig
	ChainID    string
}

// localImage resolves ref (a name, a digest reference or an image ID) among the local images.
// The image service's index answers when the runtime has one; else containerd's records.
func (r *ContainerdRuntime) localImage(ctx context.Context, ref string) (*containerImage, error) {
	if b, ok := r.images.(*ImageServiceBackend); ok && b.svc != nil {
		img, ok := b.svc.Image(ref)
		if !ok {
			return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
		}
		ci := &containerImage{ID: img.ID, Config: img.Config.Config, ChainID: img.ChainID}
		if len(img.RepoTags) > 0 {
			ci.RepoTag = img.RepoTags[0]
		}
		if len(img.RepoDigests) > 0 {
			ci.RepoDigest = img.RepoDigests[0]
		}
		switch {
		case ci.RepoTag != "":
			ci.Name = ci.RepoTag
		case ci.RepoDigest != "":
			ci.Name = ci.RepoDigest
		case len(img.Names) > 0:
			ci.Name = img.Names[0]
		default:
			ci.Name = img.ID
		}
		return ci, nil
	}
	img, err := r.client.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		if named, perr := reference.ParseDockerRef(ref); perr == nil {
			img, err = r.client.GetImage(ctx, named.String())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("image config of %s: %w", ref, err)
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("image config of %s: %w", ref, err)
	}
	ci := &containerImage{
		Name: img.Name(), ID: cfg.Digest.String(), Config: spec.Config,
		ChainID: identity.ChainID(spec.RootFS.DiffIDs).String(),
	}
	if named, err := reference.ParseNormalizedNamed(img.Name()); err == nil {
		if _, tagged := named.(reference.Tagged); tagged {
			ci.RepoTag = named.String()
		}
		ci.RepoDigest = reference.TrimNamed(named).String() + "@" + img.Target().Digest.String()
	}
	return ci, nil
}

func marshalProto(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

func (r *ContainerdRuntime) loadContainer(ctx context.Context, id string) (containerd.Container, error) {
	return r.client.LoadContainer(ctx, id)
}
