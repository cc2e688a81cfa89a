package criu

// Restore. A container is restored in two steps, as CRI defines it: CreateContainer (with a
// checkpoint archive as its image, or RestorePod) creates a container from the checkpointed
// image and config and copies the checkpoint under <root>/containers/<id>/restore/; StartContainer
// of such a container creates its task from the CRIU images (runc restore) instead of running the
// command. The container's rootfs is a fresh snapshot of its image: file-system changes made
// after the start are not part of the checkpoint.

// restoreDir is where a restorable container keeps its checkpoint.
const RestoreDir = "restore"
