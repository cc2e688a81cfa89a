// Package kuberuntime is the model's Runtime on containerd (ContainerdRuntime): where the work of
// each CRI call happens, one file per object and verb (sandbox_run.go for RunPodSandbox,
// container_create.go for CreateContainer, container_exec.go for ExecSync, stats_list_cri.go for
// ListContainerStats...). It owns the sandbox and container records and their stores, recovery
// after a restart, NRI, checkpoint/restore, image volumes, user namespaces and the stats
// collector; the leaves below it own one mechanism each: containerspec (the OCI spec),
// exitmonitor (task exits), iopump (container stdio), cgroupstats (usage readers), criu (the
// host's CRIU and the validation of CRIU images), checkpointarchive (a checkpoint on disk).
package kuberuntime
