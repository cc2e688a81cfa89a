// Package iopump moves a container's output from its containerd FIFOs to whoever reads it (the
// CRI log writer, attach sessions) and its stdin the other way, without the shim ever blocking
// on a slow reader: the container side of the log pipeline.
package iopump
