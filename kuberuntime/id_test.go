package kuberuntime

import "testing"

func TestNewID(t *testing.T) {
	a, b := newID(), newID()
	if len(a) != 64 || a == b {
		t.Fatalf("ids %q %q", a, b)
	}
	if e := newExecID(); len(e) != len("exec-")+32 || e[:5] != "exec-" {
		t.Fatalf("exec id %q", e)
	}
}
