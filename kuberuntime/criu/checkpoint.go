package criu

const (
	CheckpointImagesDir = "checkpoint"
	CheckpointConfig    = "config.dump"
	CheckpointSpec      = "spec.dump"
	CheckpointPodConfig = "pod.dump"
	// checkpointRootfsDiff holds the container's file-system changes (its rw layer) as an OCI
	// layer tar, whiteouts included.
	CheckpointRootfsDiff = "rootfs-diff.tar"
)
