// Package cgroupstats reads a container's resource usage from the cgroup filesystem directly
// (v1 or v2, whichever is mounted): CPU, memory, swap, pids, page faults, and a network
// namespace's /proc/net/dev. The stats collector of kuberuntime samples with it instead of asking
// containerd's shims, which costs a round trip per container.
package cgroupstats
