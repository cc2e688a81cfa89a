package standalone

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FuzzManifest decodes, validates and converts a manifest from the fuzzer's bytes. The
// properties: no panic; and whatever is accepted holds the invariants the manager relies on
// before it touches the disk: the UID, name and namespace are single path elements without the
// CNI_ARGS separators, the emptyDirs and subPath targets are directly under the pod's dir of the
// volume root, subPaths are relative without "..", the log dir is directly under the log root,
// every mount names an absolute clean host path, and the runtime's own validation accepts the
// sandbox and container configs (a pod it refuses would fail forever). `make fuzz` runs it for a
// bounded time; plain `go test` runs the seeds.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(twoContainers))
	if b, err := os.ReadFile("examples/web.yaml"); err == nil {
		f.Add(b)
	}
	for _, m := range hostileManifests {
		f.Add([]byte(m))
	}
	f.Add([]byte(`{"metadata":{"name":"a","uid":"u-1"},"spec":{"containers":[{"name":"c","image":"b","volumeMounts":[{"name":"v","mountPath":"/m","subPath":"x/y"}]}],"volumes":[{"name":"v","emptyDir":{}}]}}`))
	f.Add([]byte("metadata: {name: a}\nspec: {hostname: h, containers: [{name: c, image: b, env: [{name: X, value: '$(Y)'}]}]}"))
	f.Add([]byte("metadata: {name: a}\nspec: {dnsPolicy: None, dnsConfig: {nameservers: [10.0.0.1], searches: [a.example], options: [{name: ndots, value: '2'}]}, containers: [{name: c, image: b}]}"))
	for _, tc := range securityCases {
		f.Add([]byte(tc.manifest))
	}
	const volRoot, logRoot, seccompRoot = "/vr", "/logs", "/seccomp"
	f.Fuzz(func(t *testing.T, data []byte) {
		pod, err := ParseManifest(data)
		if err != nil {
			return
		}
		p, err := Convert(pod, "/m/x.yaml", ConvertOptions{VolumeRoot: volRoot, PodLogRoot: logRoot, SeccompRoot: seccompRoot})
		if err != nil {
			return
		}
		for what, v := range map[string]string{"uid": string(p.UID), "name": p.Name, "namespace": p.Namespace} {
			if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/;=\x00") {
				t.Fatalf("accepted %s %q", what, v)
			}
		}
		podDir := filepath.Join(volRoot, string(p.UID))
		under := func(base, p string) bool {
			rel, err := filepath.Rel(base, p)
			return err == nil && filepath.IsLocal(rel) && p == filepath.Clean(p)
		}
		for _, d := range p.EmptyDirs {
			if filepath.Dir(d) != filepath.Join(podDir, "volumes") || !under(podDir, d) {
				t.Fatalf("emptyDir %q not directly under %s/volumes", d, podDir)
			}
		}
		for c, subs := range p.SubPaths {
			for _, sp := range subs {
				if !under(filepath.Join(podDir, subPathDir), sp.Target) {
					t.Fatalf("container %s: subPath target %q outside the pod's %s", c, sp.Target, subPathDir)
				}
				if filepath.IsAbs(sp.Path) || hasBackstep(sp.Path) || !filepath.IsLocal(sp.Path) {
					t.Fatalf("container %s: subPath %q", c, sp.Path)
				}
			}
		}
		if ld := p.Spec.Sandbox.LogDirectory; filepath.Dir(ld) != logRoot {
			t.Fatalf("log dir %q not directly under %s", ld, logRoot)
		}
		if err := legacy.ValidateSandboxConfig(p.Spec.Sandbox); err != nil {
			t.Fatalf("accepted a pod the runtime refuses: %v", err)
		}
		// The DNS the RuntimeHelper gives the sandbox, on a host without resolv.conf.
		dns, _, err := podDNS(p.DNSPolicy, p.DNSConfig, "/nonexistent/cri-shim/resolv.conf")
		if err != nil {
			t.Fatalf("accepted a pod whose DNS config cannot be made: %v", err)
		}
		if err := legacy.ValidateDNS(dns); err != nil {
			t.Fatalf("accepted a pod whose DNS config the runtime refuses: %v", err)
		}
		for _, cs := range append(append([]legacy.ContainerSpec{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			if err := legacy.ValidateContainerConfig(cs.Config); err != nil {
				t.Fatalf("accepted a container the runtime refuses: %v", err)
			}
			for _, m := range cs.Config.Mounts {
				if !filepath.IsAbs(m.HostPath) || m.HostPath != filepath.Clean(m.HostPath) {
					t.Fatalf("mount %s: host path %q", m.ContainerPath, m.HostPath)
				}
				// In a user namespace every volume is idmapped with the pod's mapping.
				if userns := p.Spec.Sandbox.Linux.SecurityContext.NamespaceOptions.GetUsernsOptions(); userns != nil &&
					(len(m.UidMappings) != 1 || !proto.Equal(m.UidMappings[0], userns.Uids[0])) {
					t.Fatalf("mount %s: mappings %v in a user namespace %v", m.ContainerPath, m.UidMappings, userns)
				}
			}
			// Security never dropped: what the manifest asks for is in the config (security.go).
			sc := cs.Config.Linux.SecurityContext
			name := cs.Config.Metadata.Name
			if sc.MaskedPaths == nil || sc.ReadonlyPaths == nil {
				t.Fatalf("container %s: no masked or read-only paths (the kubelet always sends them)", name)
			}
			if len(sc.MaskedPaths) == 0 && sc.NamespaceOptions.GetUsernsOptions() == nil {
				t.Fatalf("container %s: /proc unmasked with the host's users", name)
			}
			for _, prof := range []*runtime.SecurityProfile{sc.Seccomp, p.Spec.Sandbox.Linux.SecurityContext.Seccomp} {
				if prof != nil && prof.ProfileType == runtime.SecurityProfile_Localhost {
					if rel, err := filepath.Rel(seccompRoot, prof.LocalhostRef); err != nil || !filepath.IsLocal(rel) {
						t.Fatalf("container %s: seccomp profile %q outside %s", name, prof.LocalhostRef, seccompRoot)
					}
				}
			}
			if asked := askedSeccomp(pod, name); asked && sc.Seccomp == nil {
				t.Fatalf("container %s: seccomp asked for, none in the config", name)
			}
		}
		if pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers && p.Spec.Sandbox.Linux.SecurityContext.NamespaceOptions.GetUsernsOptions().GetMode() != runtime.NamespaceMode_POD {
			t.Fatal("hostUsers: false without a user namespace")
		}
	})
}

// askedSeccomp tells whether the manifest asks for a seccomp profile for the container (its field
// or annotation, the pod's field or annotation).
func askedSeccomp(pod *corev1.Pod, container string) bool {
	if pod.Annotations[corev1.SeccompPodAnnotationKey] != "" || pod.Annotations[corev1.SeccompContainerAnnotationKeyPrefix+container] != "" {
		return true
	}
	if sc := pod.Spec.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		return true
	}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.Name == container && c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
			return true
		}
	}
	return false
}
