// Package criu is what cri-shim knows of CRIU: whether checkpoint/restore works on this host (a
// probe that really dumps and restores a process), what its logs say, and the validation of a
// directory of CRIU image files from outside before runc restores from them (their seccomp
// filters included). Where those images sit in a checkpoint is kuberuntime/checkpointarchive's.
package criu
