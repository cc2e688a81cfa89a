package kuberuntime

import (
	"context"
	"encoding/json"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
)

// withSpecAndMetadata generates the container's spec (as containerd.WithNewSpec) and records, in
// the metadata extension, what the spec resolved: the user, groups and cgroup. One containerd
// call creates the container with both (reading the spec back and updating the extension took
// two more, one of them a metadata write).
//
// adjust (NRI's adjustments) may still change the spec; the metadata is taken from the final one.
func withSpecAndMetadata(specOpts []oci.SpecOpts, meta *containerMetadata, out **runtimespec.Spec, adjust ...containerd.NewContainerOpts) containerd.NewContainerOpts {
	return func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		if _, ok := namespaces.Namespace(ctx); !ok {
			ctx = namespaces.WithNamespace(ctx, client.DefaultNamespace())
		}
		spec, err := oci.GenerateSpec(ctx, client, c, specOpts...)
		if err != nil {
			return err
		}
		if c.Spec, err = typeurl.MarshalAny(spec); err != nil {
			return err
		}
		if len(adjust) > 0 {
			before := c.Spec
			for _, o := range adjust {
				if err := o(ctx, client, c); err != nil {
					return err
				}
			}
			if c.Spec != before {
				spec = &runtimespec.Spec{}
				if err := json.Unmarshal(c.Spec.GetValue(), spec); err != nil {
					return err
				}
			}
		}
		if spec.Process != nil {
			meta.UID, meta.GID = spec.Process.User.UID, spec.Process.User.GID
			meta.Groups = spec.Process.User.AdditionalGids
		}
		if spec.Linux != nil {
			meta.CgroupsPath = spec.Linux.CgroupsPath
		}
		*out = spec
		copyMeta := *meta
		return containerd.WithContainerExtension(containerExtensionID, &copyMeta)(ctx, client, c)
	}
}
