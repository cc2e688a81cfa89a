package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
)

func TestCopyCRILog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	os.WriteFile(path, []byte("2026-01-01T00:00:00.000000000Z stdout F hello\n"+
		"2026-01-01T00:00:00.100000000Z stderr P part one, \n"+
		"2026-01-01T00:00:00.200000000Z stderr F part two\n"+
		"2026-01-01T00:00:00.300000000Z stdout F incomplete line without newline"), 0o644)
	var out bytes.Buffer
	if err := copyCRILog(context.Background(), path, false, &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "hello\npart one, part two\n" {
		t.Errorf("got %q", got)
	}
}

func TestPodsApply(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.StaticPodsDir = filepath.Join(dir, "manifests")
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("metadata: {name: web, namespace: edge}\nspec: {containers: [{name: c, image: busybox:1}]}\n"), 0o644)
	var out bytes.Buffer
	if err := podsApply(cfg, good, &out); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(cfg.StaticPodsDir, "edge_web.yaml")
	st, err := os.Stat(target)
	if err != nil || st.Mode().Perm() != 0o600 || !strings.Contains(out.String(), "pod/web created") {
		t.Fatalf("apply wrote %v %v: %s", st, err, out.String())
	}
	if ds, _ := os.Stat(cfg.StaticPodsDir); ds.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", ds.Mode())
	}
	out.Reset()
	if err := podsApply(cfg, good, &out); err != nil || !strings.Contains(out.String(), "configured") {
		t.Fatalf("re-apply: %v %s", err, out.String())
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("metadata: {name: other}\nspec: {containers: [{name: c, image: b}], volumes: [{name: v, secret: {secretName: s}}]}\n"), 0o644)
	if err := podsApply(cfg, bad, &out); err == nil || !strings.Contains(err.Error(), "hostPath and emptyDir") {
		t.Fatalf("invalid manifest: %v", err)
	}
	entries, _ := os.ReadDir(cfg.StaticPodsDir)
	if len(entries) != 1 {
		t.Errorf("files in the dir: %v", entries)
	}
	cfg.StaticPodsDir = ""
	if err := podsApply(cfg, good, &out); err == nil {
		t.Error("apply with standalone pods off")
	}
}

func TestSplitName(t *testing.T) {
	if ns, n := splitName("web"); ns != "default" || n != "web" {
		t.Errorf("%s/%s", ns, n)
	}
	if ns, n := splitName("kube-system/etcd"); ns != "kube-system" || n != "etcd" {
		t.Errorf("%s/%s", ns, n)
	}
}

// TestPodsApplyRefusesHostileNames: a UID or volume name climbing out of the volume root is
// refused by `pods apply` (as the API server would), and nothing is written into the dir.
func TestPodsApplyRefusesHostileNames(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.StaticPodsDir = filepath.Join(dir, "manifests")
	for name, m := range map[string]string{
		"uid":      "metadata: {name: a, uid: '../../../..'}\nspec: {containers: [{name: c, image: busybox:1}]}\n",
		"emptyDir": "metadata: {name: b}\nspec: {containers: [{name: c, image: busybox:1}], volumes: [{name: '../../../../../etc', emptyDir: {}}]}\n",
	} {
		f := filepath.Join(dir, name+".yaml")
		os.WriteFile(f, []byte(m), 0o644)
		var out bytes.Buffer
		if err := podsApply(cfg, f, &out); err == nil {
			t.Errorf("%s: applied: %s", name, out.String())
		}
	}
	if entries, _ := os.ReadDir(cfg.StaticPodsDir); len(entries) != 0 {
		t.Errorf("files in the dir: %v", entries)
	}
}
