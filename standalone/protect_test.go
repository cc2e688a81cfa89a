package standalone

import (
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"github.com/cri-shim/cri-shim/server"
)

// TestProtect: a sandbox or container of a manifest's pod is protected (the reason names the
// manifest and the delete command); one without the owner label, or labelled but of no manifest
// (a kubelet's Pod that copied the label, or a leftover the manager removes itself) is not; before
// the first scan the label suffices.
func TestProtect(t *testing.T) {
	m, _ := New(Options{Dir: t.TempDir(), Runtime: legacytest.NewFakeRuntime()})
	owned := map[string]string{LabelOwner: OwnerValue}
	if why := m.Protect("any", owned); !strings.Contains(why, "owned by cri-shim's standalone pods") {
		t.Errorf("before the first scan: %q", why)
	}
	if why := m.Protect("any", map[string]string{"app": "x"}); why != "" {
		t.Errorf("unlabelled before the first scan: %q", why)
	}
	for _, src := range []string{"metadata: {name: web}", "metadata: {name: db, namespace: infra}"} {
		pod, err := ParseManifest([]byte(src + "\nspec: {containers: [{name: a, image: b}]}"))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := Convert(pod, "/etc/cri-shim/manifests/"+pod.Name+".yaml", ConvertOptions{})
		w := &worker{done: make(chan struct{})}
		w.current.Store(p)
		m.workers[p.Key()] = w
	}
	m.scanned.Store(true)
	web, db := m.workers["default/web"].pod(), m.workers["infra/db"].pod()
	cases := []struct {
		uid    legacy.UID
		labels map[string]string
		want   string
	}{
		{web.UID, web.Spec.Sandbox.Labels, "(manifest /etc/cri-shim/manifests/web.yaml); delete it with `cri-shim pods delete web` or remove its manifest"},
		{web.UID, web.Spec.Containers[0].Config.Labels, "`cri-shim pods delete web`"},
		{db.UID, db.Spec.Sandbox.Labels, "`cri-shim pods delete infra/db`"},
		{web.UID, map[string]string{"io.kubernetes.pod.uid": string(web.UID)}, ""},
		{"kubelet-uid", owned, ""},
		{"", owned, ""},
	}
	for _, tc := range cases {
		why := m.Protect(string(tc.uid), tc.labels)
		if (tc.want == "") != (why == "") || !strings.Contains(why, tc.want) {
			t.Errorf("Protect(%s, %v) = %q, want %q", tc.uid, tc.labels, why, tc.want)
		}
	}
}

// TestOwnerLabelReserved: the owner label the manager's Protect and orphan removal trust is the
// one the CRI server refuses from CRI clients (server.OwnerLabel), so no kubelet pod can carry it.
func TestOwnerLabelReserved(t *testing.T) {
	if LabelOwner != server.OwnerLabel {
		t.Fatalf("standalone.LabelOwner %q is not the label the CRI server reserves (%q)", LabelOwner, server.OwnerLabel)
	}
}
