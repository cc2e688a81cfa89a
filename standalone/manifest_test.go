package standalone

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const twoContainers = `
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: setup
    image: busybox:1.36
    command: ["sh", "-c", "echo hi > /data/x"]
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: server
    image: busybox:1.36
    command: ["httpd", "-f", "-p", "$(PORT)"]
    env:
    - {name: PORT, value: "8080"}
    - {name: ME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    ports: [{name: http, containerPort: 8080, hostPort: 18080}]
    volumeMounts: [{name: data, mountPath: /data, readOnly: true}, {name: host, mountPath: /host}]
    resources:
      requests: {cpu: 250m}
      limits: {cpu: 500m, memory: 64Mi}
    livenessProbe:
      exec: {command: ["true"]}
      periodSeconds: 2
    readinessProbe:
      httpGet: {path: /, port: http}
  - name: sidecar
    image: busybox
    imagePullPolicy: IfNotPresent
    args: ["sleep", "3600"]
    securityContext:
      privileged: true
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
      allowPrivilegeEscalation: false
    readinessProbe:
      tcpSocket: {port: 8080}
  volumes:
  - {name: data, emptyDir: {}}
  - {name: host, hostPath: {path: /tmp}}
`

func TestConvertManifest(t *testing.T) {
	pod, err := ParseManifest([]byte(twoContainers))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Convert(pod, "/etc/m/web.yaml", ConvertOptions{PodLogRoot: "/logs", VolumeRoot: "/vol"})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Spec
	if p.Namespace != "default" || p.UID == "" || p.UID != PodUID(pod) {
		t.Fatalf("pod %s/%s uid %q", p.Namespace, p.Name, p.UID)
	}
	if s.RestartPolicy != legacy.RestartPolicyOnFailure || s.StopTimeout != 5*time.Second {
		t.Errorf("policy %s, grace %v", s.RestartPolicy, s.StopTimeout)
	}
	sb := s.Sandbox
	if sb.Labels[LabelOwner] != OwnerValue || sb.Labels["app"] != "web" || sb.Labels["io.kubernetes.pod.uid"] != string(p.UID) {
		t.Errorf("sandbox labels %v", sb.Labels)
	}
	if !strings.HasPrefix(sb.LogDirectory, "/logs/default_web_") || sb.Hostname != "web" {
		t.Errorf("log dir %q hostname %q", sb.LogDirectory, sb.Hostname)
	}
	if len(sb.PortMappings) != 1 || sb.PortMappings[0].HostPort != 18080 || sb.PortMappings[0].ContainerPort != 8080 {
		t.Errorf("port mappings %v", sb.PortMappings)
	}
	if !sb.Linux.SecurityContext.Privileged {
		t.Error("sandbox not privileged though a container is")
	}
	if len(s.InitContainers) != 1 || len(s.Containers) != 2 {
		t.Fatalf("%d init, %d containers", len(s.InitContainers), len(s.Containers))
	}
	server := s.Containers[0].Config
	if strings.Join(server.Command, " ") != "httpd -f -p 8080" {
		t.Errorf("command not expanded: %q", server.Command)
	}
	if string(server.Envs[1].Value) != "web" {
		t.Errorf("fieldRef env %v", server.Envs)
	}
	if s.Containers[0].PullPolicy != legacy.PullIfNotPresent || s.Containers[1].PullPolicy != legacy.PullIfNotPresent {
		t.Errorf("pull policies %s %s", s.Containers[0].PullPolicy, s.Containers[1].PullPolicy)
	}
	r := server.Linux.Resources
	if r.CpuShares != 256 || r.CpuQuota != 50000 || r.CpuPeriod != 100000 || r.MemoryLimitInBytes != 64<<20 {
		t.Errorf("resources %v", r)
	}
	if len(server.Mounts) != 2 || server.Mounts[0].HostPath != "/vol/"+string(p.UID)+"/volumes/data" || !server.Mounts[0].Readonly || server.Mounts[1].HostPath != "/tmp" {
		t.Errorf("mounts %v", server.Mounts)
	}
	if len(p.EmptyDirs) != 1 {
		t.Errorf("empty dirs %v", p.EmptyDirs)
	}
	side := s.Containers[1].Config.Linux.SecurityContext
	if !side.Privileged || !side.NoNewPrivs || side.Capabilities.AddCapabilities[0] != "NET_ADMIN" {
		t.Errorf("security context %v", side)
	}
	if server.Labels["io.kubernetes.container.name"] != "server" || server.Labels[LabelOwner] != OwnerValue {
		t.Errorf("container labels %v", server.Labels)
	}
	probes := p.Probes["server"]
	if len(probes) != 2 || probes[0].Kind != ProbeLiveness || probes[0].Exec[0] != "true" || probes[0].Period != 2*time.Second ||
		probes[1].HTTPPort != 8080 || probes[1].HTTPPath != "/" || probes[1].FailureThreshold != 3 {
		t.Errorf("server probes %+v", probes)
	}
	if sp := p.Probes["sidecar"]; len(sp) != 1 || sp[0].TCPPort != 8080 {
		t.Errorf("sidecar probes %+v", sp)
	}
	if sb.Linux.SecurityContext.NamespaceOptions.Network != runtime.NamespaceMode_POD {
		t.Error("network mode")
	}
}

func TestConvertLatestIsPullAlways(t *testing.T) {
	pod, _ := ParseManifest([]byte("metadata: {name: a}\nspec: {containers: [{name: c, image: busybox}]}"))
	p, err := Convert(pod, "", ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.Containers[0].PullPolicy != legacy.PullAlways {
		t.Errorf("untagged image: %s", p.Spec.Containers[0].PullPolicy)
	}
}

func TestConvertRejects(t *testing.T) {
	for name, m := range map[string]string{
		"unknown field":    "metadata: {name: a}\nspec: {containers: [{name: c, image: b, bogus: 1}]}",
		"no containers":    "metadata: {name: a}\nspec: {}",
		"no name":          "spec: {containers: [{name: c, image: b}]}",
		"bad name":         "metadata: {name: A_B}\nspec: {containers: [{name: c, image: b}]}",
		"configMap volume": "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: v, configMap: {name: x}}]}",
		"missing volume":   "metadata: {name: a}\nspec: {containers: [{name: c, image: b, volumeMounts: [{name: v, mountPath: /v}]}]}",
		"duplicate name":   "metadata: {name: a}\nspec: {containers: [{name: c, image: b}, {name: c, image: b}]}",
		"two handlers":     "metadata: {name: a}\nspec: {containers: [{name: c, image: b, livenessProbe: {exec: {command: [x]}, tcpSocket: {port: 1}}}]}",
		"named port":       "metadata: {name: a}\nspec: {containers: [{name: c, image: b, livenessProbe: {tcpSocket: {port: nope}}}]}",
		"policy":           "metadata: {name: a}\nspec: {restartPolicy: Sometimes, containers: [{name: c, image: b}]}",
		"kind":             "kind: Deployment\nmetadata: {name: a}\nspec: {}",
		"envFrom":          "metadata: {name: a}\nspec: {containers: [{name: c, image: b, envFrom: [{configMapRef: {name: x}}]}]}",
		"nonroot no uid":   "metadata: {name: a}\nspec: {containers: [{name: c, image: b, securityContext: {runAsNonRoot: true}}]}",
		"relative host":    "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: v, hostPath: {path: rel}}]}",
	} {
		pod, err := ParseManifest([]byte(m))
		if err == nil {
			_, err = Convert(pod, "", ConvertOptions{VolumeRoot: "/v"})
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPodUIDStable(t *testing.T) {
	a, _ := ParseManifest([]byte("metadata: {name: a}\nspec: {containers: [{name: c, image: b}]}"))
	b, _ := ParseManifest([]byte("metadata: {name: a}\nspec: {containers: [{name: c, image: other}]}"))
	c, _ := ParseManifest([]byte("metadata: {name: a, namespace: x}\nspec: {containers: [{name: c, image: b}]}"))
	if PodUID(a) != PodUID(b) || PodUID(a) == PodUID(c) || len(PodUID(a)) != 36 {
		t.Errorf("uids %s %s %s", PodUID(a), PodUID(b), PodUID(c))
	}
}

func TestExampleManifestConverts(t *testing.T) {
	data, err := os.ReadFile("examples/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pod, err := ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Convert(pod, "examples/web.yaml", ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.Containers) != 2 || len(p.Spec.Sandbox.PortMappings) != 1 || len(p.Probes["server"]) != 2 {
		t.Errorf("example: %d containers, ports %v, probes %v", len(p.Spec.Containers), p.Spec.Sandbox.PortMappings, p.Probes)
	}
}

// recursiveReadOnly: IfPossible is recursive where the runtime says it can be, read-only
// elsewhere; Enabled asks the runtime for it whatever it says (it refuses where runc cannot).
func TestConvertRecursiveReadOnlyFollowsTheRuntime(t *testing.T) {
	const manifest = `metadata: {name: a}
spec:
  containers:
  - name: c
    image: busybox
    volumeMounts:
    - {name: host, mountPath: /host, readOnly: true, mountPropagation: None, recursiveReadOnly: IfPossible}
    - {name: host, mountPath: /host2, readOnly: true, mountPropagation: None, recursiveReadOnly: Enabled}
  volumes: [{name: host, hostPath: {path: /tmp}}]
`
	for _, c := range []struct {
		name     string
		rro      func() bool
		possible bool
	}{
		{"runtime without rro", nil, false},
		{"runtime says no", func() bool { return false }, false},
		{"runtime says yes", func() bool { return true }, true},
	} {
		pod, err := ParseManifest([]byte(manifest))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Convert(pod, "", ConvertOptions{VolumeRoot: "/vol", RecursiveReadOnly: c.rro})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ms := p.Spec.Containers[0].Config.GetMounts()
		if len(ms) != 2 || !ms[0].GetReadonly() || ms[0].GetRecursiveReadOnly() != c.possible || !ms[1].GetRecursiveReadOnly() {
			t.Errorf("%s: mounts %v", c.name, ms)
		}
	}
}
