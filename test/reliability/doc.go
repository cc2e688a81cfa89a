// Package reliability holds cri-shim's load and fault-injection tests: a churn of pods counted for
// leaks, and SIGKILLs of the daemon at random moments. They start the daemon binary with a managed
// containerd and need root, so they build only with the integration tag (make integration).
package reliability
