package standalone

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const hostResolv = `# the host's
nameserver 192.0.2.1
nameserver 192.0.2.2
search old.example
search host.example. corp.example
options ndots:2 timeout:1
`

func writeResolv(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func ptr[T any](v T) *T { return &v }

// TestPodDNSPolicies: None is the dnsConfig alone; Default, ClusterFirst (and its default, "")
// and ClusterFirstWithHostNet are the host's resolv.conf with the dnsConfig merged in
// (nameservers and searches appended without duplicates, options by name, the pod's winning);
// without a dnsConfig those are nil (the sandbox copies the host's file).
func TestPodDNSPolicies(t *testing.T) {
	resolv := writeResolv(t, hostResolv)
	dc := &corev1.PodDNSConfig{
		Nameservers: []string{"192.0.2.2", "10.0.0.1"},
		Searches:    []string{"corp.example", "pod.example"},
		Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr("5")}, {Name: "edns0"}},
	}
	merged := &runtime.DNSConfig{
		Servers:  []string{"192.0.2.1", "192.0.2.2", "10.0.0.1"},
		Searches: []string{"host.example", "corp.example", "pod.example"},
		Options:  []string{"ndots:5", "timeout:1", "edns0"},
	}
	for _, tc := range []struct {
		policy corev1.DNSPolicy
		dc     *corev1.PodDNSConfig
		want   *runtime.DNSConfig
	}{
		{corev1.DNSNone, dc, &runtime.DNSConfig{Servers: dc.Nameservers, Searches: dc.Searches, Options: []string{"ndots:5", "edns0"}}},
		{corev1.DNSDefault, dc, merged},
		{corev1.DNSClusterFirst, dc, merged},
		{"", dc, merged},
		{corev1.DNSClusterFirstWithHostNet, dc, merged},
		{corev1.DNSDefault, nil, nil},
		{corev1.DNSClusterFirst, nil, nil},
		{"", nil, nil},
		{corev1.DNSClusterFirstWithHostNet, nil, nil},
	} {
		t.Run(fmt.Sprintf("%s/%v", tc.policy, tc.dc != nil), func(t *testing.T) {
			got, warnings, err := podDNS(tc.policy, tc.dc, resolv)
			if err != nil || len(warnings) > 0 {
				t.Fatalf("err %v warnings %v", err, warnings)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, _, err := podDNS("Cluster", dc, resolv); err == nil {
		t.Error("an unknown policy was accepted")
	}
	// A missing host file is an empty base, as the sandbox reads it.
	got, _, err := podDNS(corev1.DNSDefault, dc, filepath.Join(t.TempDir(), "none"))
	if err != nil || !reflect.DeepEqual(got.Servers, dc.Nameservers) || !reflect.DeepEqual(got.Searches, dc.Searches) {
		t.Errorf("missing resolv.conf: %v %v", got, err)
	}
}

// TestPodDNSLimits: the merged config is cut as the kubelet cuts it: 3 nameservers; 32
// searches, none longer than 253 characters, a search line of at most 2048; each cut is said.
func TestPodDNSLimits(t *testing.T) {
	var searches []string
	for i := range 31 {
		searches = append(searches, fmt.Sprintf("s%d.example", i))
	}
	resolv := writeResolv(t, "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch "+strings.Join(searches, " ")+"\n")
	dc := &corev1.PodDNSConfig{Nameservers: []string{"10.0.0.1", "10.0.0.2"}, Searches: []string{"a.example", "b.example"}}
	got, warnings, err := podDNS(corev1.DNSDefault, dc, resolv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Servers, []string{"192.0.2.1", "192.0.2.2", "10.0.0.1"}) {
		t.Errorf("servers %v", got.Servers)
	}
	if len(got.Searches) != 32 || got.Searches[31] != "a.example" {
		t.Errorf("searches %d, last %q", len(got.Searches), got.Searches[len(got.Searches)-1])
	}
	if len(warnings) != 2 || !strings.HasPrefix(warnings[0], "Nameserver limits were exceeded") || !strings.HasPrefix(warnings[1], "Search Line limits were exceeded") {
		t.Errorf("warnings %q", warnings)
	}

	long := strings.Repeat("x", 254)
	var wide []string
	for i := range 10 {
		wide = append(wide, fmt.Sprintf("%d%s", i, strings.Repeat("w", 249))) // 250 characters
	}
	resolv = writeResolv(t, "nameserver 192.0.2.1\nsearch "+long+" "+strings.Join(wide, " ")+"\n")
	got, warnings, err = podDNS(corev1.DNSDefault, &corev1.PodDNSConfig{Searches: []string{"z.example"}}, resolv)
	if err != nil {
		t.Fatal(err)
	}
	// 8 of 250 characters and their blanks fit 2048; the 254 characters one goes first.
	if line := strings.Join(got.Searches, " "); len(line) > 2048 || len(got.Searches) != 8 || got.Searches[0] != wide[0] {
		t.Errorf("search line of %d characters, %d searches", len(line), len(got.Searches))
	}
	if len(warnings) != 1 {
		t.Errorf("warnings %q", warnings)
	}
}

// TestConvertDNS: Convert keeps the pod's policy and dnsConfig for the RuntimeHelper, puts the
// dnsConfig as it is and a non-default policy into the sandbox config (what its spec hash covers:
// an edit of either replaces the sandbox), and refuses what the API server refuses of them.
func TestConvertDNS(t *testing.T) {
	pod, err := ParseManifest([]byte("metadata: {name: a}\nspec: {dnsPolicy: None, dnsConfig: {nameservers: [10.0.0.1], options: [{name: ndots, value: '1'}]}, containers: [{name: c, image: b}]}"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Convert(pod, "", ConvertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := &runtime.DNSConfig{Servers: []string{"10.0.0.1"}, Options: []string{"ndots:1"}}
	if !proto.Equal(p.Spec.Sandbox.DnsConfig, want) || p.DNSPolicy != corev1.DNSNone || p.DNSConfig == nil || p.DNSConfig.Nameservers[0] != "10.0.0.1" {
		t.Errorf("sandbox DNS %v, pod policy %q config %v", p.Spec.Sandbox.DnsConfig, p.DNSPolicy, p.DNSConfig)
	}
	hashOf := func(manifest string) string {
		t.Helper()
		pod, err := ParseManifest([]byte(manifest))
		if err != nil {
			t.Fatal(err)
		}
		p, err := Convert(pod, "", ConvertOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return legacy.HashString(legacy.SandboxSpecHash(p.Spec.Sandbox))
	}
	plain := hashOf("metadata: {name: a}\nspec: {containers: [{name: c, image: b}]}")
	if hashOf("metadata: {name: a}\nspec: {dnsPolicy: ClusterFirst, containers: [{name: c, image: b}]}") != plain {
		t.Error("the default policy named changed the sandbox's hash")
	}
	if hashOf("metadata: {name: a}\nspec: {dnsPolicy: Default, containers: [{name: c, image: b}]}") == plain {
		t.Error("dnsPolicy Default left the sandbox's hash as ClusterFirst's")
	}
	for name, spec := range map[string]string{
		"None without dnsConfig":   "{dnsPolicy: None, containers: [{name: c, image: b}]}",
		"None without nameservers": "{dnsPolicy: None, dnsConfig: {searches: [a.example]}, containers: [{name: c, image: b}]}",
		"unknown policy":           "{dnsPolicy: Cluster, containers: [{name: c, image: b}]}",
		"4 nameservers":            "{dnsConfig: {nameservers: [10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4]}, containers: [{name: c, image: b}]}",
		"nameserver not an IP":     "{dnsConfig: {nameservers: [dns.example]}, containers: [{name: c, image: b}]}",
		"option without a name":    "{dnsConfig: {options: [{value: '1'}]}, containers: [{name: c, image: b}]}",
		"33 searches":              "{dnsConfig: {searches: [" + strings.Repeat("a.example, ", 32) + "b.example]}, containers: [{name: c, image: b}]}",
	} {
		pod, err := ParseManifest([]byte("metadata: {name: a}\nspec: " + spec))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := Convert(pod, "", ConvertOptions{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestManagerSandboxDNS: the manager's sandboxes get the DNS of their pod's policy: the host's
// resolv.conf merged with the dnsConfig for Default; none (the host's file, copied by the
// sandbox) without a dnsConfig.
func TestManagerSandboxDNS(t *testing.T) {
	dir := t.TempDir()
	fake := legacytest.NewFakeRuntime()
	m, err := New(Options{Dir: filepath.Join(dir, "manifests"), Runtime: fake, ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond, HostResolvConf: writeResolv(t, hostResolv)})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "manifests"), 0o700)
	WriteFileAtomic(filepath.Join(dir, "manifests", "a.yaml"), []byte("metadata: {name: a}\nspec: {dnsPolicy: Default, dnsConfig: {nameservers: [10.0.0.1]}, containers: [{name: ca, image: b}]}"), 0o600)
	WriteFileAtomic(filepath.Join(dir, "manifests", "b.yaml"), []byte("metadata: {name: b}\nspec: {containers: [{name: cb, image: b}]}"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "both pods' containers", func() bool { return running(fake, "ca") != nil && running(fake, "cb") != nil })
	dnsOf := func(name string) *runtime.DNSConfig {
		st, err := fake.PodSandboxStatus(ctx, running(fake, name).SandboxID, false)
		if err != nil {
			t.Fatal(err)
		}
		return st.Config.GetDnsConfig()
	}
	want := &runtime.DNSConfig{Servers: []string{"192.0.2.1", "192.0.2.2", "10.0.0.1"}, Searches: []string{"host.example", "corp.example"}, Options: []string{"ndots:2", "timeout:1"}}
	if got := dnsOf("ca"); !proto.Equal(got, want) {
		t.Errorf("Default pod's DNS %v, want %v", got, want)
	}
	if got := dnsOf("cb"); got != nil {
		t.Errorf("pod without dnsConfig: DNS %v, want none", got)
	}
}
