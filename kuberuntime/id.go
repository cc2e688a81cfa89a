package kuberuntime

import (
	"crypto/rand"
	"encoding/hex"
)

// newID returns a new random ID, 64 hex digits as containerd's CRI makes them, for sandboxes,
// containers and whatever else the runtime names in containerd.
func newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// newExecID returns the ID of a new exec process: "exec-" and 32 hex digits.
func newExecID() string {
	return "exec-" + newID()[:32]
}
