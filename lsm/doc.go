// Package lsm is the host's Linux security modules as the runtime uses them: AppArmor (whether the
// host enforces it, which profiles are loaded, and the runtime's default profile, generated from
// containerd's template and loaded with apparmor_parser when containers need it) and SELinux
// (whether it is enforcing; the runtime applies no SELinux labels, so it refuses to start on a host
// where SELinux enforces and says once that pods' SELinux options are ignored elsewhere). What each
// reads from the host is injectable so that tests cover hosts this one is not.
package lsm
