// Package containerspec builds the OCI spec of a CRI container: from the container's CRI config,
// its pod sandbox (namespaces, files, user namespace) and its image (command, env, user, volumes),
// it makes the containerd spec options that the runtime applies when it creates the container.
// What the spec depends on from the host (cgroup controllers, AppArmor, capabilities, mount
// propagation, the runtime's recursive read-only support) comes in through Host, so that the
// builder is a pure function of its Input in tests; the users looked up in images' /etc/passwd
// and /etc/group are kept in a UserCache across containers of the same image.
package containerspec
