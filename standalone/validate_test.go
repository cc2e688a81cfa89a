package standalone

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy/legacytest"
)

// hostileManifests are manifests the API server refuses, each of which would have the manager
// make, chmod or remove a path it chose (a UID or volume name with "..") or put separators into
// names that reach file names, labels and CNI_ARGS.
var hostileManifests = map[string]string{
	"uid dotdot":              "metadata: {name: a, uid: '../../../..'}\nspec: {containers: [{name: c, image: b}]}",
	"uid dot":                 "metadata: {name: a, uid: '.'}\nspec: {containers: [{name: c, image: b}]}",
	"uid slash":               "metadata: {name: a, uid: 'x/y'}\nspec: {containers: [{name: c, image: b}]}",
	"uid semicolon":           "metadata: {name: a, uid: 'x;IP=10.0.0.1'}\nspec: {containers: [{name: c, image: b}]}",
	"uid space":               "metadata: {name: a, uid: 'x y'}\nspec: {containers: [{name: c, image: b}]}",
	"uid too long":            "metadata: {name: a, uid: '" + strings.Repeat("a", 129) + "'}\nspec: {containers: [{name: c, image: b}]}",
	"emptyDir dotdot":         "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: '../../../../../etc', emptyDir: {}}]}",
	"emptyDir slash":          "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: 'x/y', emptyDir: {}}]}",
	"emptyDir dot":            "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: '.', emptyDir: {}}]}",
	"emptyDir upper":          "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: Data, emptyDir: {}}]}",
	"emptyDir empty name":     "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: '', emptyDir: {}}]}",
	"hostPath volume dotdot":  "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: '..', hostPath: {path: /tmp}}]}",
	"duplicate volume":        "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: v, emptyDir: {}}, {name: v, hostPath: {path: /tmp}}]}",
	"namespace with dot":      "metadata: {name: a, namespace: a.b}\nspec: {containers: [{name: c, image: b}]}",
	"namespace dotdot":        "metadata: {name: a, namespace: '..'}\nspec: {containers: [{name: c, image: b}]}",
	"namespace too long":      "metadata: {name: a, namespace: " + strings.Repeat("n", 64) + "}\nspec: {containers: [{name: c, image: b}]}",
	"name double dot":         "metadata: {name: 'a..b'}\nspec: {containers: [{name: c, image: b}]}",
	"name dot dash":           "metadata: {name: 'a.-b'}\nspec: {containers: [{name: c, image: b}]}",
	"container name too long": "metadata: {name: a}\nspec: {containers: [{name: " + strings.Repeat("c", 64) + ", image: b}]}",
	"subPath dotdot inside":   "metadata: {name: a}\nspec: {containers: [{name: c, image: b, volumeMounts: [{name: v, mountPath: /v, subPath: 'x/../y'}]}], volumes: [{name: v, emptyDir: {}}]}",
	"subPath absolute":        "metadata: {name: a}\nspec: {containers: [{name: c, image: b, volumeMounts: [{name: v, mountPath: /v, subPath: /etc}]}], volumes: [{name: v, emptyDir: {}}]}",
	"subPath escapes":         "metadata: {name: a}\nspec: {containers: [{name: c, image: b, volumeMounts: [{name: v, mountPath: /v, subPath: ../..}]}], volumes: [{name: v, emptyDir: {}}]}",
	"hostPath relative":       "metadata: {name: a}\nspec: {containers: [{name: c, image: b}], volumes: [{name: v, hostPath: {path: 'etc'}}]}",
	// What the runtime's own validation refuses (found by FuzzManifest's invariant).
	"hostname newline": "metadata: {name: a}\nspec: {hostname: \"h\\n1.2.3.4 x\", containers: [{name: c, image: b}]}",
	"env name with =":  "metadata: {name: a}\nspec: {containers: [{name: c, image: b, env: [{name: 'A=B', value: x}]}]}",
	"command NUL":      "metadata: {name: a}\nspec: {containers: [{name: c, image: b, command: [\"a\\0b\"]}]}",
	"sysctl name":      "metadata: {name: a}\nspec: {securityContext: {sysctls: [{name: '../x', value: '1'}]}, containers: [{name: c, image: b}]}",
	"dns option":       "metadata: {name: a}\nspec: {dnsConfig: {options: [{name: \"x\\nnameserver 1.1.1.1\"}]}, containers: [{name: c, image: b}]}",
	"mountPath dotdot": "metadata: {name: a}\nspec: {containers: [{name: c, image: b, volumeMounts: [{name: v, mountPath: /a/../b}]}], volumes: [{name: v, emptyDir: {}}]}",
	"hostIP":           "metadata: {name: a}\nspec: {containers: [{name: c, image: b, ports: [{containerPort: 1, hostPort: 2, hostIP: nope}]}]}",
	"workingDir":       "metadata: {name: a}\nspec: {containers: [{name: c, image: b, workingDir: rel}]}",
	"image newline":    "metadata: {name: a}\nspec: {containers: [{name: c, image: \"b\\nc\", imagePullPolicy: Always}]}",
	"negative grace":   "metadata: {name: a}\nspec: {terminationGracePeriodSeconds: -5, containers: [{name: c, image: b}]}",
}

// TestConvertRefusesHostileNames: what the API server refuses is refused, for the CLI's apply and
// the manager's scan alike (both go through Convert before anything touches the disk).
func TestConvertRefusesHostileNames(t *testing.T) {
	for name, m := range hostileManifests {
		pod, err := ParseManifest([]byte(m))
		if err != nil {
			t.Errorf("%s: does not parse: %v", name, err)
			continue
		}
		if p, err := Convert(pod, "", ConvertOptions{VolumeRoot: "/var/lib/cri-shim/standalone/volumes"}); err == nil {
			t.Errorf("%s: accepted (uid %q, emptyDirs %v)", name, p.UID, p.EmptyDirs)
		}
	}
	// What Kubernetes accepts still converts.
	ok := "metadata: {name: web-0.example, namespace: kube-system, uid: 5F0C2A54-1b5e-4c2d-9a57-3f2b6a0e8d11}\n" +
		"spec: {containers: [{name: c, image: b, volumeMounts: [{name: cache-1, mountPath: /v, subPath: 'a/b..c/d'}]}], volumes: [{name: cache-1, emptyDir: {}}]}"
	pod, err := ParseManifest([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(pod, "", ConvertOptions{VolumeRoot: "/v"}); err != nil {
		t.Fatalf("a valid manifest: %v", err)
	}
}

// TestManagerIgnoresHostileManifest: a manifest whose UID climbs out of the volume root runs no
// pod and makes no directory outside the volume root (before the fix it made <dir>/volumes/data
// two levels above the root, and its removal would RemoveAll <dir>).
func TestManagerIgnoresHostileManifest(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "a", "b", "volumes")
	fake := legacytest.NewFakeRuntime()
	m, err := New(Options{Dir: filepath.Join(dir, "manifests"), VolumeRoot: root, Runtime: fake,
		ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "manifests"), 0o700)
	for name, uid := range map[string]string{"up": "../..", "up3": "../../.."} {
		WriteFileAtomic(filepath.Join(dir, "manifests", name+".yaml"), []byte("metadata: {name: "+name+", uid: '"+uid+
			"'}\nspec: {containers: [{name: c, image: b, volumeMounts: [{name: data, mountPath: /d}]}], volumes: [{name: data, emptyDir: {}}]}\n"), 0o600)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitFor(t, "the first scan", m.scanned.Load)
	// A second scan: a worker the first started has had time to make its emptyDirs.
	scanned := time.Now()
	waitFor(t, "another scan", func() bool { return time.Since(scanned) > 100*time.Millisecond })
	cancel()
	<-done
	if len(m.Pods()) != 0 {
		t.Errorf("pods run: %v", m.Pods())
	}
	if err := fake.AssertStartedPods(nil); err != nil {
		t.Error(err)
	}
	for _, p := range []string{filepath.Join(dir, "volumes"), filepath.Join(dir, "a", "volumes"), filepath.Join(dir, "..", "volumes")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s outside the volume root was made: %v", p, err)
		}
	}
}
