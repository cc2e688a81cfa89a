//go:build linux

// Command nnp is installed setuid root in the nonewprivs test image; it prints its effective uid,
// which is 0 only when privilege escalation was allowed.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
