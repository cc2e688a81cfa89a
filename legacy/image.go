package legacy

// ImageSpec names an image: the reference of a container's image field, with the annotations and
// runtime handler CRI passes along.
type ImageSpec struct {
	// Image is a reference ("busybox", "registry.k8s.io/pause:3.9", "repo@sha256:...") or an
	// image ID.
	Image string
	// Annotations of the image spec (CRI ImageSpec.annotations).
	Annotations map[string]string
	// RuntimeHandler selects the snapshotter the image is unpacked for.
	RuntimeHandler string
}

// Image is basic information about a local container image.
type Image struct {
	// ID of the image: the digest of its config ("sha256:...").
	ID string
	// RepoTags are the tagged names the image is known by.
	RepoTags []string
	// RepoDigests are the names by manifest digest.
	RepoDigests []string
	// Size is the image's size in bytes.
	Size int64
	// Pinned images are never garbage collected.
	Pinned bool
}
