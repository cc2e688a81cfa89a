//go:build integration

package standalone

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/moby/sys/mountinfo"
)

// TestStandaloneSubPathSymlinkEscape: a container that can write a volume swaps the directory
// another of its mounts takes as subPath for a symlink to / and exits; its restart must not
// mount the host's root (CVE-2017-1002101's pattern). The init container makes /data/sub; the
// main container mounts the volume at /data and its sub at /mnt, and on its first run replaces
// /data/sub with `ln -s / /data/sub` and exits 1; on the restart it records whether a file of
// the host (the test's own dir under /tmp) shows at /mnt. At c1b9f1b it did: the spec generator
// followed the link on the host and bind-mounted / read-write.
//
// Also checked: the volume root is root-only (0700), the subPath mounts the manager makes are
// gone once the pod is removed, and nothing of the pod is left under the volume root.
func TestStandaloneSubPathSymlinkEscape(t *testing.T) {
	if os.Getenv("CRI_SHIM_INTEGRATION") == "" {
		t.Fatal("CRI_SHIM_INTEGRATION is not set: run through make integration")
	}
	e := newITEnv(t, legacy.NewBackoff(time.Second, 2*time.Second, nil), legacy.ContainerGCPolicy{MinAge: time.Hour, MaxPerPodContainer: -1, MaxContainers: -1})
	marker := filepath.Join(e.dir, "host-marker")
	if err := os.WriteFile(marker, []byte("host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inContainer := "/mnt" + marker // where the marker shows if /mnt is the host's /
	e.apply("escape", `
metadata: {name: escape}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: init
    image: busybox:1.37.0
    command: [sh, -c, 'mkdir -p /data/sub && echo inside > /data/sub/file']
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: main
    image: busybox:1.37.0
    command: [sh, -c, 'if [ -L /data/sub ]; then if [ -e `+inContainer+` ]; then echo escaped; else echo contained; fi > /data/result.tmp; ls /mnt >> /data/result.tmp; mv /data/result.tmp /data/result; exec sleep 3600; fi; cat /mnt/file > /data/first; rm -rf /data/sub && ln -s / /data/sub && exit 1']
    volumeMounts: [{name: data, mountPath: /data}, {name: data, mountPath: /mnt, subPath: sub}]
  volumes: [{name: data, emptyDir: {}}]
`)
	pod, _ := ParseManifest([]byte("metadata: {name: escape}"))
	uid := string(PodUID(pod))
	vol := filepath.Join(e.dir, "volumes", uid, "volumes", "data")
	var result []byte
	e.wait("the restarted container's result", 120*time.Second, func() bool {
		var err error
		result, err = os.ReadFile(filepath.Join(vol, "result"))
		return err == nil
	})
	t.Logf("restarted container: %q; events:\n%s", result, e.events("escape"))
	if first, _ := os.ReadFile(filepath.Join(vol, "first")); string(first) != "inside\n" {
		t.Errorf("first run's subPath mount showed %q, want the sub dir's file", first)
	}
	if !strings.HasPrefix(string(result), "contained") {
		t.Fatalf("the restarted container saw the host's files at its subPath mount: %q", result)
	}
	if st, err := os.Stat(filepath.Join(e.dir, "volumes")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("volume root: %v %v, want mode 0700", st.Mode(), err)
	}

	os.Remove(filepath.Join(e.dir, "manifests", "escape.yaml"))
	e.wait("the pod removed", 60*time.Second, func() bool {
		list, _ := e.rt.ListPodSandbox(context.Background(), &legacy.SandboxFilter{Labels: map[string]string{"io.kubernetes.pod.name": "escape"}})
		_, err := os.Stat(filepath.Join(e.dir, "volumes", uid))
		return len(list) == 0 && os.IsNotExist(err)
	})
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(filepath.Join(e.dir, "volumes")))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		t.Errorf("left mounted: %s", m.Mountpoint)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the host's file: %v", err)
	}
}
