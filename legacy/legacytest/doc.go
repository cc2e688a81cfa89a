// Package legacytest fakes the model's Runtime (FakeRuntime: sandboxes, containers, events, stats
// in memory, every call recorded) for the tests of the model, the CRI server and standalone pods.
// Production code never imports it.
package legacytest
