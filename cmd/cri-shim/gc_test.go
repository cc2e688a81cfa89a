package main

import (
	"runtime/debug"
	"testing"
)

func TestApplyGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })
	t.Setenv("GOGC", "")
	applyGCPercent(60)
	if got := debug.SetGCPercent(100); got != 60 {
		t.Fatalf("GC percent %d after go_gc_percent 60", got)
	}
	// GOGC in the environment wins (the runtime applied it at start).
	t.Setenv("GOGC", "200")
	applyGCPercent(60)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC set: go_gc_percent applied over it", got)
	}
}
