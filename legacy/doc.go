// Package legacy is the kubelet's classic container runtime model, kept alive as cri-shim's core:
// what a pod, a container and their statuses are (Pod, PodStatus, ContainerStatus), the Runtime
// that runs them, the pod status Cache, the ContainerGC policy, the ImagePuller with its backoff,
// SyncPod and its SyncResults, the RuntimeHelper SyncPod asks for the configs it creates,
// lifecycle hooks (HandlerRunner), events, the error classes and the validation of CRI requests.
// It imports nothing of containerd: kuberuntime implements Runtime on containerd,
// legacy/legacytest fakes it for tests, server and standalone drive it.
package legacy
