// Package criu is what cri-shim knows of CRIU: whether checkpoint/restore works on this host (a
// probe that really dumps and restores a process), the layout of a checkpoint archive (the CRIU
// image directory and the dumps beside it), and the validation of the CRIU image files of an
// archive from outside before runc restores from them (their seccomp filters included).
package criu
