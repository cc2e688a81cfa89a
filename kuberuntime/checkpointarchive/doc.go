// Package checkpointarchive owns the on-disk format of a container checkpoint: the tree CRIU's
// images are written into with the dumps beside them (config.dump, spec.dump, dump.log,
// rootfs-diff.tar), the uncompressed tar archive of that tree and its placement at the caller's
// location (atomic, never replacing a file), a pod checkpoint's directory (pod.dump and one tree
// per container) written through a handle on the caller's directory, and the way back: decoding
// an archive's or a directory's config.dump and pod.dump, and copying or extracting a checkpoint
// that is not trusted (entries that leave the directory, links, sparse files and sizes past the
// archive's or the configured maximum are refused with InvalidArgument). It knows nothing of
// containerd's tasks or the runtime's records: kuberuntime takes the checkpoint and restores from
// it; kuberuntime/criu validates the CRIU images inside.
package checkpointarchive

// The layout of a container checkpoint (an archive, or one container's directory in a pod
// checkpoint):
//
//	checkpoint/      the CRIU images of the container's processes
//	config.dump      Config (JSON): the container, its pod, its image, the CRI config
//	spec.dump        the container's OCI runtime spec (JSON)
//	dump.log         CRIU's log of the dump
//	rootfs-diff.tar  the container's file-system changes (an OCI layer tar, whiteouts included)
//
// A pod checkpoint is a directory with pod.dump (PodConfig) and one such tree per container,
// under its name.
const (
	ImagesDir  = "checkpoint"
	ConfigDump = "config.dump"
	SpecDump   = "spec.dump"
	DumpLog    = "dump.log"
	RootfsDiff = "rootfs-diff.tar"
	PodDump    = "pod.dump"
)
