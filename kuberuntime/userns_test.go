package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func idmap(c, h, l uint32) *runtime.IDMapping {
	return &runtime.IDMapping{ContainerId: c, HostId: h, Length: l}
}

func usernsSandbox(ns *runtime.NamespaceOption) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
		Linux:    &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: ns}},
	}
}

// TestValidateUserns: the rules critest's UserNamespaces specs and the kubelet rely on.
func TestValidateUserns(t *testing.T) {
	m := []*runtime.IDMapping{idmap(0, 100000, 65536)}
	pod := func(uids, gids []*runtime.IDMapping) *runtime.NamespaceOption {
		return &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: uids, Gids: gids}}
	}
	for _, tc := range []struct {
		name    string
		ns      *runtime.NamespaceOption
		wantErr string // "" = valid
		userns  bool
	}{
		{"no options", nil, "", false},
		{"no userns options", &runtime.NamespaceOption{}, "", false},
		{"node", &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}}, "", false},
		{"node with mappings", &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE, Uids: m, Gids: m}}, "takes no mappings", false},
		{"pod", pod(m, m), "", true},
		{"pod, different gid range", pod(m, []*runtime.IDMapping{idmap(0, 200000, 65536)}), "", true},
		{"two uid mappings", pod([]*runtime.IDMapping{idmap(0, 1000, 100000), idmap(0, 2000, 100000)}, m), "exactly one uid mapping, got 2", false},
		{"two gid mappings", pod(m, []*runtime.IDMapping{idmap(0, 1000, 10), idmap(10, 2000, 10)}), "exactly one gid mapping, got 2", false},
		{"no uid mapping", pod(nil, m), "exactly one uid mapping, got 0", false},
		{"no gid mapping", pod(m, nil), "exactly one gid mapping, got 0", false},
		{"nil mapping", pod([]*runtime.IDMapping{nil}, m), "exactly one uid mapping", false},
		{"container ID 0 not mapped", pod([]*runtime.IDMapping{idmap(1, 1000, 100000)}, m), "must map container ID 0, got 1", false},
		{"gid 0 not mapped", pod(m, []*runtime.IDMapping{idmap(5, 1000, 100000)}), "must map container ID 0", false},
		{"zero length", pod([]*runtime.IDMapping{idmap(0, 1000, 0)}, m), "length 0", false},
		{"overflow", pod([]*runtime.IDMapping{idmap(0, 4294967000, 1000)}, m), "beyond the last ID", false},
		{"container mode", &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}}, "mode CONTAINER is not supported", false},
		{"target mode", &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET}}, "mode TARGET is not supported", false},
		{"host network", &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, UsernsOptions: pod(m, m).UsernsOptions}, "host's network namespace", false},
		{"host pid", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE, UsernsOptions: pod(m, m).UsernsOptions}, "host's pid namespace", false},
		{"host ipc", &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_NODE, UsernsOptions: pod(m, m).UsernsOptions}, "host's ipc namespace", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := legacy.UsernsMapping(tc.ns)
			verr := legacy.ValidateSandboxConfig(usernsSandbox(tc.ns))
			if tc.wantErr == "" {
				if err != nil || verr != nil {
					t.Fatalf("rejected: %v / %v", err, verr)
				}
				if (got != nil) != tc.userns {
					t.Fatalf("mapping %+v, want userns %v", got, tc.userns)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("got %v, want InvalidArgument containing %q", err, tc.wantErr)
			}
			if !errdefs.IsInvalidArgument(verr) {
				t.Fatalf("ValidateSandboxConfig: %v, want InvalidArgument", verr)
			}
		})
	}
	got, _ := legacy.UsernsMapping(pod(m, []*runtime.IDMapping{idmap(0, 200000, 65536)}))
	want := &legacy.PodUsernsMapping{UID: runtimespec.LinuxIDMapping{HostID: 100000, Size: 65536}, GID: runtimespec.LinuxIDMapping{HostID: 200000, Size: 65536}}
	if *got != *want {
		t.Fatalf("mapping %+v, want %+v", got, want)
	}
}

func TestUsernsSnapshotLabels(t *testing.T) {
	var none *legacy.PodUsernsMapping
	if len(usernsSnapshotOpts(none)) != 0 || usernsPinnedPath(none, sandboxFilesFor("/s")) != "" {
		t.Fatal("options without a user namespace")
	}
	m := &legacy.PodUsernsMapping{UID: runtimespec.LinuxIDMapping{HostID: 100000, Size: 65536}, GID: runtimespec.LinuxIDMapping{HostID: 200000, Size: 65536}}
	var info snapshots.Info
	for _, o := range usernsSnapshotOpts(m) {
		if err := o(&info); err != nil {
			t.Fatal(err)
		}
	}
	if info.Labels[snapshots.LabelSnapshotUIDMapping] != "0:100000:65536" || info.Labels[snapshots.LabelSnapshotGIDMapping] != "0:200000:65536" {
		t.Fatalf("labels %v", info.Labels)
	}
	if p := usernsPinnedPath(m, sandboxFilesFor("/s")); p != "/s/userns" {
		t.Fatalf("pinned path %q", p)
	}
}

func TestRuncHandler(t *testing.T) {
	h := RuncHandler("runc", "/opt/runc")
	if o, ok := h.Options.(*runcoptions.Options); !ok || o.BinaryName != "/opt/runc" || RuncBinary(h) != "/opt/runc" || h.Type != "io.containerd.runc.v2" {
		t.Fatalf("%+v", h)
	}
	if h := RuncHandler("runc", ""); h.Options != nil || RuncBinary(h) != "runc" {
		t.Fatalf("%+v", h)
	}
	if got := ResolveRuncBinary("/x/runc"); got != "/x/runc" {
		t.Fatalf("configured binary: %q", got)
	}
	_, statErr := os.Stat(DefaultRuncBinary)
	if got := ResolveRuncBinary(""); (got == DefaultRuncBinary) != (statErr == nil) || got != DefaultRuncBinary && got != "" {
		t.Fatalf("default binary: %q (stat: %v)", got, statErr)
	}
}

// TestRuncFeaturesUserns reads `runc features` output: user namespaces need both the user
// namespace and enabled idmap mount extensions; a runc 1.1 reports neither.
func TestRuncFeaturesUserns(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		json   string
		userns bool
		rro    bool
	}{
		"runc 1.5": {`{"mountOptions":["ro","rro"],"linux":{"namespaces":["mount","user"],"mountExtensions":{"idmap":{"enabled":true}}}}`, true, true},
		"no idmap": {`{"mountOptions":["rro"],"linux":{"namespaces":["user"],"mountExtensions":{"idmap":{"enabled":false}}}}`, false, true},
		"no user":  {`{"linux":{"namespaces":["mount"],"mountExtensions":{"idmap":{"enabled":true}}}}`, false, false},
		"old runc": {`{"mountOptions":["ro"],"linux":{"namespaces":["user"]}}`, false, false},
		"garbage":  {`not json`, false, false},
	} {
		bin := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		script := "#!/bin/sh\n[ \"$1\" = features ] || exit 1\ncat <<'X'\n" + tc.json + "\nX\n"
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		f := probeRunc(bin)
		if f.userns() != tc.userns || (f != nil && slices.Contains(f.MountOptions, "rro")) != tc.rro {
			t.Errorf("%s: userns %v rro %+v", name, f.userns(), f)
		}
	}
	if f := probeRunc(filepath.Join(dir, "absent")); f != nil || f.userns() {
		t.Fatalf("absent runc: %+v", f)
	}
}

func sandboxFilesFor(stateDir string) sandbox.Files { return sandbox.PodFiles("/r", stateDir, false) }

// TestHandlerFeaturesUnknown: an unknown handler has no features, and the probe of a handler whose
// runc cannot do user namespaces says so without asking containerd.
func TestHandlerFeaturesUnknown(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "runc11")
	os.WriteFile(bin, []byte("#!/bin/sh\necho '{\"mountOptions\":[\"rro\"],\"linux\":{\"namespaces\":[\"user\"]}}'\n"), 0o755)
	r := &ContainerdRuntime{handlers: map[string]legacy.RuntimeHandler{"": RuncHandler("old", bin), "old": RuncHandler("old", bin)}}
	if f := r.HandlerFeatures(context.Background(), "nope"); f != (legacy.HandlerFeatures{}) {
		t.Fatalf("unknown handler: %+v", f)
	}
	if f := r.HandlerFeatures(context.Background(), ""); f != (legacy.HandlerFeatures{RecursiveReadOnlyMounts: true}) {
		t.Fatalf("runc without idmap: %+v", f)
	}
	m := &legacy.PodUsernsMapping{UID: runtimespec.LinuxIDMapping{HostID: 1, Size: 1}, GID: runtimespec.LinuxIDMapping{HostID: 1, Size: 1}}
	if err := r.checkUsernsHandler(context.Background(), m, r.handlers["old"]); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("userns pod on a handler without support: %v", err)
	}
	if err := r.checkUsernsHandler(context.Background(), nil, r.handlers["old"]); err != nil {
		t.Fatal(err)
	}
}
