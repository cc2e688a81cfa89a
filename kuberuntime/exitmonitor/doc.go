// Package exitmonitor tells kuberuntime when a container's task exits: one subscription to
// containerd's /tasks/exit events for the whole namespace, each exit delivered exactly once to the
// watch of its task (by ID and pid), with containerd's task list reconciled at start, after a
// lost subscription and periodically, so that an exit missed while the events were down is still
// delivered.
package exitmonitor
