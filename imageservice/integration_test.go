//go:build integration

// Integration tests of the image service against a real containerd (started by each test, from
// $CRI_SHIM_CONTAINERD_BIN, default /var/cache/cri-shim/bin, built by hack/setup.sh) and the test
// registry on 127.0.0.1. No traffic leaves 127.0.0.1: the hosts dirs written here mirror the
// upstream registries to the test registry without falling back to them.
package imageservice

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/test/critest/testregistry"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Verbose() {
		logrus.SetLevel(logrus.DebugLevel)
	} else {
		logrus.SetOutput(io.Discard)
	}
	bin := containerdBinDir()
	for _, b := range []string{"containerd", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			// Fail, never skip: CI must not pass without running these.
			fmt.Fprintf(os.Stderr, "FAIL: %s not found (%v): run hack/setup.sh or set CRI_SHIM_CONTAINERD_BIN\n", b, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func containerdBinDir() string {
	if d := os.Getenv("CRI_SHIM_CONTAINERD_BIN"); d != "" {
		return d
	}
	return "/var/cache/cri-shim/bin"
}

// env is one test's containerd, registry and image service.
type env struct {
	t        *testing.T
	ctx      context.Context
	root     string // containerd's root
	client   *containerd.Client
	reg      *testregistry.Registry
	hostsDir string
	svc      *Service
	ns       string
}

// startContainerd runs a containerd of its own (root, state and socket under a short /tmp dir,
// CRI and NRI off) and stops it when the test ends.
func startContainerd(t *testing.T, disabled ...string) (*containerd.Client, string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "cs-it-")
	if err != nil {
		t.Fatal(err)
	}
	root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
	sock := filepath.Join(dir, "c.sock")
	conf := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri"%s]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, root, state, quotedList(disabled), sock, sock+".ttrpc", filepath.Join(root, "opt"))
	confPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	bin := containerdBinDir()
	cmd := exec.Command(filepath.Join(bin, "containerd"), "--config", confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var client *containerd.Client
	t.Cleanup(func() {
		if client != nil {
			client.Close()
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "containerd.log")); err == nil {
				var lines []string
				for _, l := range strings.Split(string(b), "\n") {
					if strings.Contains(l, "level=error") || strings.Contains(l, "level=warn") {
						lines = append(lines, l)
					}
				}
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				t.Logf("containerd warnings and errors:\n%s", strings.Join(lines, "\n"))
			}
		}
		_ = os.RemoveAll(dir)
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("containerd exited at start (log in %s)", dir)
		default:
		}
		if _, err := os.Stat(sock); err == nil {
			c, err := containerd.New(sock, containerd.WithTimeout(2*time.Second))
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				ok, err := c.IsServing(ctx)
				cancel()
				if err == nil && ok {
					client = c
					return c, root
				}
				c.Close()
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd does not answer after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quotedList renders names as the tail of a TOML list: , "a", "b".
func quotedList(names []string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, ", %q", n)
	}
	return b.String()
}

// writeHostsDir mirrors each upstream host to the registry at addr, with the mirror as the only
// server (no fallback to the real registries).
func writeHostsDir(t *testing.T, dir, addr string, hosts ...string) {
	t.Helper()
	for _, host := range hosts {
		d := filepath.Join(dir, host)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		toml := fmt.Sprintf("server = %q\noverride_path = true\n", "http://"+addr+"/v2/"+host)
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type envOpts struct {
	// disabledPlugins are containerd plugins off besides CRI's and NRI.
	disabledPlugins []string
	reg             testregistry.Options
	noReg           bool
	config          Config
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	client, root := startContainerd(t, o.disabledPlugins...)
	e := &env{t: t, client: client, root: root, ns: "it"}
	e.ctx = namespaces.WithNamespace(context.Background(), e.ns)
	if !o.noReg {
		reg, err := testregistry.Start(context.Background(), o.reg)
		if err != nil {
			t.Fatalf("test registry: %v", err)
		}
		t.Cleanup(func() { reg.Close() })
		e.reg = reg
		e.hostsDir = t.TempDir()
		writeHostsDir(t, e.hostsDir, reg.Addr(), append(testregistry.UpstreamHosts, "test.local")...)
	}
	cfg := o.config
	cfg.PullViaTransfer = cfg.PullViaTransfer || viaTransferForTest
	cfg.Namespace = e.ns
	cfg.ContainerdRoot = root
	if cfg.RegistryConfigPath == "" {
		cfg.RegistryConfigPath = e.hostsDir
	}
	svc, err := New(client, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	e.svc = svc
	return e
}

func (e *env) pull(ref string, auth *runtime.AuthConfig) (string, error) {
	resp, err := e.svc.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}, Auth: auth})
	return resp.GetImageRef(), err
}

func (e *env) mustPull(ref string) string {
	e.t.Helper()
	id, err := e.pull(ref, nil)
	if err != nil {
		e.t.Fatalf("pull %s: %v", ref, err)
	}
	return id
}

func (e *env) status(ref string) *runtime.Image {
	e.t.Helper()
	resp, err := e.svc.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		e.t.Fatalf("status %s: %v", ref, err)
	}
	return resp.GetImage()
}

func (e *env) remove(ref string) {
	e.t.Helper()
	if _, err := e.svc.RemoveImage(context.Background(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		e.t.Fatalf("remove %s: %v", ref, err)
	}
}

func (e *env) list() []*runtime.Image {
	e.t.Helper()
	resp, err := e.svc.ListImages(context.Background(), &runtime.ListImagesRequest{})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.GetImages()
}

// leftovers counts what the namespace holds in containerd: image records, blobs, ingests,
// snapshots, leases.
func (e *env) leftovers() (records, blobs, ingests, snaps, leases int) {
	e.t.Helper()
	imgs, err := e.client.ImageService().List(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	_ = e.client.ContentStore().Walk(e.ctx, func(content.Info) error { blobs++; return nil })
	sts, _ := e.client.ContentStore().ListStatuses(e.ctx)
	_ = e.client.SnapshotService("overlayfs").Walk(e.ctx, func(context.Context, snapshots.Info) error { snaps++; return nil })
	ls, _ := e.client.LeasesService().List(e.ctx)
	return len(imgs), blobs, len(sts), snaps, len(ls)
}

func (e *env) expectNothingLeft(what string) {
	e.t.Helper()
	if r, b, i, s, l := e.leftovers(); r+b+i+s+l != 0 {
		e.t.Errorf("%s left behind %d image records, %d blobs, %d ingests, %d snapshots, %d leases", what, r, b, i, s, l)
	}
	if n := len(e.svc.Images()); n != 0 {
		e.t.Errorf("%s: %d images indexed", what, n)
	}
}

// randomImage is a small linux/amd64 image with layers of random content.
func randomImage(t *testing.T, layerSize int64, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, layers)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.User = "4242"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// push stores img in the registry at addr under repo:tag ("test.local/<repo>" upstream).
func push(t *testing.T, addr, repoTag string, img v1.Image, auth authn.Authenticator) {
	t.Helper()
	if auth == nil {
		auth = authn.Anonymous
	}
	ref, err := name.ParseReference(addr+"/test.local/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
}

func ids(t *testing.T, img v1.Image) (id, manifest string) {
	t.Helper()
	c, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return c.String(), m.String()
}

func TestIntegrationPullStatusListRemove(t *testing.T) {
	e := newEnv(t, envOpts{})
	img := randomImage(t, 64<<10, 2)
	push(t, e.reg.Addr(), "app:1", img, nil)
	wantID, manifest := ids(t, img)

	id := e.mustPull("test.local/app:1")
	if id != wantID {
		t.Fatalf("image ID %s, want the config digest %s", id, wantID)
	}
	st := e.status("test.local/app:1")
	if st == nil {
		t.Fatal("no status after pull")
	}
	if fmt.Sprint(st.RepoTags) != "[test.local/app:1]" || fmt.Sprint(st.RepoDigests) != "[test.local/app@"+manifest+"]" {
		t.Errorf("tags %v digests %v", st.RepoTags, st.RepoDigests)
	}
	if st.Size < 128<<10 || st.GetUid().GetValue() != 4242 || st.Username != "" || st.Pinned {
		t.Errorf("status %v", st)
	}
	// By ID, truncated ID, repo digest: the same status.
	for _, q := range []string{id, strings.TrimPrefix(id, "sha256:"), id[:19], "test.local/app@" + manifest} {
		if got := e.status(q); got == nil || got.Id != id || fmt.Sprint(got.RepoTags) != fmt.Sprint(st.RepoTags) {
			t.Errorf("status(%q) = %v", q, got)
		}
	}
	// Verbose: the image config as JSON.
	resp, err := e.svc.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: id}, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		ChainID   string `json:"chainID"`
		ImageSpec struct {
			Architecture string `json:"architecture"`
			Config       struct{ User string }
		} `json:"imageSpec"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.ImageSpec.Architecture != "amd64" || info.ImageSpec.Config.User != "4242" || info.ChainID == "" {
		t.Errorf("verbose info %q: %v", resp.Info["info"], err)
	}
	// List, with and without a filter.
	if l := e.list(); len(l) != 1 || l[0].Id != id {
		t.Errorf("list %v", l)
	}
	lr, _ := e.svc.ListImages(context.Background(), &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: "test.local/app:1"}}})
	if len(lr.Images) != 1 {
		t.Errorf("filtered list %v", lr.Images)
	}
	lr, _ = e.svc.ListImages(context.Background(), &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: "test.local/other:1"}}})
	if len(lr.Images) != 0 {
		t.Errorf("filtered list %v", lr.Images)
	}
	// The records containerd holds: tag, repo digest, ID.
	recs, _ := e.client.ImageService().List(e.ctx)
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	sort.Strings(names)
	if want := fmt.Sprint([]string{id, "test.local/app:1", "test.local/app@" + manifest}); fmt.Sprint(names) != want {
		t.Errorf("records %v, want %v", names, want)
	}

	// Pulling again is quick and changes nothing.
	if id2 := e.mustPull("test.local/app:1"); id2 != id {
		t.Errorf("second pull: %s", id2)
	}

	// A new service instance rebuilds the same view from containerd.
	svc2, err := New(e.client, e.svc.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	if img, ok := svc2.Image("test.local/app:1"); !ok || img.ID != id || len(img.Names) != 3 {
		t.Errorf("rebuilt index: %+v %v", img, ok)
	}

	// Remove by tag: every name goes, and so do the content and snapshots.
	e.remove("test.local/app:1")
	if st := e.status(id); st != nil {
		t.Errorf("status after remove: %v", st)
	}
	if l := e.list(); len(l) != 0 {
		t.Errorf("list after remove: %v", l)
	}
	e.expectNothingLeft("remove")
	// The other service instance follows containerd's events.
	waitFor(t, func() bool { _, ok := svc2.Image(id); return !ok })
	// Removing what is not there succeeds.
	e.remove("test.local/app:1")
	e.remove(id)
}

func TestIntegrationSameImageTwoNames(t *testing.T) {
	e := newEnv(t, envOpts{})
	id1 := e.mustPull(testregistry.Pause39)
	id2 := e.mustPull(testregistry.Pause39GCR)
	if id1 != id2 {
		t.Fatalf("pause:3.9 by two names: %s and %s", id1, id2)
	}
	st := e.status(id1)
	if fmt.Sprint(st.RepoTags) != fmt.Sprint([]string{"k8s.gcr.io/pause:3.9", "registry.k8s.io/pause:3.9"}) || len(st.RepoDigests) != 2 {
		t.Fatalf("status %v", st)
	}
	if st.GetUid().GetValue() != 65535 {
		t.Errorf("uid %v", st.GetUid())
	}
	if l := e.list(); len(l) != 1 {
		t.Errorf("%d images listed, want 1", len(l))
	}
	// Remove by repo digest removes both names.
	e.remove(st.RepoDigests[0])
	for _, ref := range []string{testregistry.Pause39, testregistry.Pause39GCR, id1} {
		if st := e.status(ref); st != nil {
			t.Errorf("%s still there", ref)
		}
	}
	e.expectNothingLeft("remove by digest")

	// Three tags of one image, removed by ID.
	tags := []string{"gcr.io/k8s-staging-cri-tools/test-image-tags:1", "gcr.io/k8s-staging-cri-tools/test-image-tags:2", "gcr.io/k8s-staging-cri-tools/test-image-tags:3"}
	var id string
	for _, tag := range tags {
		id = e.mustPull(tag)
	}
	if st := e.status(tags[0]); fmt.Sprint(st.RepoTags) != fmt.Sprint(tags) {
		t.Errorf("tags %v", st.RepoTags)
	}
	e.remove(id)
	for _, tag := range tags {
		if e.status(tag) != nil {
			t.Errorf("%s still there", tag)
		}
	}
	e.expectNothingLeft("remove by ID")
}

func TestIntegrationRetagMovesTag(t *testing.T) {
	e := newEnv(t, envOpts{})
	a, b := randomImage(t, 1024, 1), randomImage(t, 1024, 1)
	push(t, e.reg.Addr(), "moving:v", a, nil)
	idA := e.mustPull("test.local/moving:v")
	push(t, e.reg.Addr(), "moving:v", b, nil)
	idB := e.mustPull("test.local/moving:v")
	if idA == idB {
		t.Fatal("same ID for two images")
	}
	if st := e.status("test.local/moving:v"); st.Id != idB {
		t.Errorf("tag points at %s, want %s", st.Id, idB)
	}
	old := e.status(idA)
	if old == nil || len(old.RepoTags) != 0 || len(old.RepoDigests) != 1 {
		t.Errorf("old image %v", old)
	}
}

func TestIntegrationImageUsers(t *testing.T) {
	e := newEnv(t, envOpts{})
	for ref, want := range map[string]struct {
		uid  int64
		name string
	}{
		"gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest":            {1002, ""},
		"gcr.io/k8s-staging-cri-tools/test-image-user-username:latest":       {0, "www-data"},
		"gcr.io/k8s-staging-cri-tools/test-image-user-uid-group:latest":      {1003, ""},
		"gcr.io/k8s-staging-cri-tools/test-image-user-username-group:latest": {0, "www-data"},
	} {
		e.mustPull(ref)
		st := e.status(ref)
		if st.GetUid().GetValue() != want.uid || st.Username != want.name {
			t.Errorf("%s: uid %v username %q", ref, st.GetUid(), st.Username)
		}
	}
}

func TestIntegrationPinned(t *testing.T) {
	e := newEnv(t, envOpts{config: Config{PinnedImages: []string{testregistry.SandboxImage}}})
	e.mustPull(testregistry.SandboxImage)
	e.mustPull(testregistry.Pause39)
	if !e.status(testregistry.SandboxImage).Pinned || e.status(testregistry.Pause39).Pinned {
		t.Error("pinned wrong")
	}
	if e.status(testregistry.SandboxImage).Id == e.status(testregistry.Pause39).Id {
		t.Error("the sandbox image must differ from pause:3.9")
	}
	// Pinned survives a restart without the configuration: it is a label in containerd.
	svc2, err := New(e.client, Config{Namespace: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	defer svc2.Close()
	if img, _ := svc2.Image(testregistry.SandboxImage); !img.Pinned {
		t.Error("pinned label lost")
	}
}

func TestIntegrationBasicAuth(t *testing.T) {
	creds := &testregistry.BasicAuth{Username: "alice", Password: "wonderland"}
	e := newEnv(t, envOpts{reg: testregistry.Options{BasicAuth: creds}})
	img := randomImage(t, 4096, 1)
	push(t, e.reg.Addr(), "private:1", img, &authn.Basic{Username: creds.Username, Password: creds.Password})
	wantID, _ := ids(t, img)
	ref := "test.local/private:1"

	_, err := e.pull(ref, nil)
	if c := status.Code(err); c != codes.Unauthenticated && c != codes.PermissionDenied {
		t.Errorf("no credentials: %v", err)
	}
	_, err = e.pull(ref, &runtime.AuthConfig{Username: "alice", Password: "wrong"})
	if c := status.Code(err); c != codes.Unauthenticated && c != codes.PermissionDenied {
		t.Errorf("wrong password: %v", err)
	}
	// Credentials for another registry are not sent.
	_, err = e.pull(ref, &runtime.AuthConfig{Username: "alice", Password: "wonderland", ServerAddress: "other.registry"})
	if c := status.Code(err); c != codes.Unauthenticated && c != codes.PermissionDenied {
		t.Errorf("credentials of another registry: %v", err)
	}
	e.expectNothingLeft("failed authentications")

	id, err := e.pull(ref, &runtime.AuthConfig{Username: "alice", Password: "wonderland"})
	if err != nil || id != wantID {
		t.Fatalf("right credentials: %s %v", id, err)
	}
	e.remove(id)
	enc := base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))
	// Auth (base64), with the server address of the upstream name.
	id, err = e.pull(ref, &runtime.AuthConfig{Auth: enc, ServerAddress: "https://test.local"})
	if err != nil || id != wantID {
		t.Fatalf("auth field: %s %v", id, err)
	}
}

func TestIntegrationStalledBlobIsCancelled(t *testing.T) {
	e := newEnv(t, envOpts{
		reg:    testregistry.Options{StallAfterBytes: 8 << 10},
		config: Config{PullProgressTimeout: 2 * time.Second},
	})
	push(t, e.reg.Addr(), "stall:1", randomImage(t, 256<<10, 1), nil)
	start := time.Now()
	_, err := e.pull("test.local/stall:1", nil)
	elapsed := time.Since(start)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("stalled pull: %v", err)
	}
	if elapsed < 2*time.Second || elapsed > 15*time.Second {
		t.Errorf("cancelled after %s, timeout 2s", elapsed)
	}
	t.Logf("stalled pull cancelled after %s: %v", elapsed.Round(time.Millisecond), err)
	e.expectNothingLeft("stalled pull")
}

// throttle sends blob bodies of repositories under /slow/ in 20 pieces, 150 ms apart.
func throttle(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/slow/") || !strings.Contains(r.URL.Path, "/blobs/") || r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bufferingWriter{header: http.Header{}}
		next.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
		body := rec.buf.Bytes()
		piece := max(len(body)/20, 1)
		for len(body) > 0 {
			n := min(piece, len(body))
			if _, err := w.Write(body[:n]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			body = body[n:]
			select {
			case <-time.After(150 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	})
}

type bufferingWriter struct {
	header http.Header
	code   int
	buf    bytes.Buffer
}

func (b *bufferingWriter) Header() http.Header { return b.header }
func (b *bufferingWriter) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.buf.Write(p)
}
func (b *bufferingWriter) WriteHeader(code int) { b.code = code }

func TestIntegrationSlowPullWithProgressIsNotCancelled(t *testing.T) {
	e := newEnv(t, envOpts{
		reg:    testregistry.Options{Middleware: throttle},
		config: Config{PullProgressTimeout: time.Second},
	})
	push(t, e.reg.Addr(), "slow:1", randomImage(t, 32<<10, 1), nil)
	var last atomic.Value
	start := time.Now()
	_, err := e.svc.Pull(context.Background(), "test.local/slow:1", PullOptions{Progress: func(p Progress) { last.Store(p) }})
	if err != nil {
		t.Fatalf("slow pull: %v", err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("pull took %s: not slow enough to test anything", d)
	}
	p, _ := last.Load().(Progress)
	if !p.Finished || p.Done != p.Total || p.Total == 0 || len(p.Blobs) < 3 {
		t.Errorf("last progress %+v", p)
	}
}

func TestIntegrationCancelledRequestCancelsPull(t *testing.T) {
	e := newEnv(t, envOpts{reg: testregistry.Options{StallAfterBytes: 8 << 10}})
	push(t, e.reg.Addr(), "stall:1", randomImage(t, 256<<10, 1), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := e.svc.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "test.local/stall:1"}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("pull past its deadline: %v", err)
	}
	waitFor(t, func() bool { return e.svc.pulls.inFlight() == 0 })
	waitFor(t, func() bool { r, b, i, s, l := e.leftovers(); return r+b+i+s+l == 0 })
}

// faults serves garbage manifests under /garbage/, truncated blobs under /truncated/, and counts
// requests under /count/.
type faults struct {
	mu       sync.Mutex
	requests map[string]int
	active   map[string]int // repository -> requests in flight
	peak     int            // most repositories with requests in flight at once
}

// repoOf returns the repository of a registry API path (/v2/<repo>/blobs/..., /manifests/...).
func repoOf(p string) string {
	p = strings.TrimPrefix(p, "/v2/")
	for _, m := range []string{"/blobs/", "/manifests/"} {
		if i := strings.Index(p, m); i >= 0 {
			return p[:i]
		}
	}
	return p
}

func (f *faults) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if !strings.Contains(r.UserAgent(), "cri-shim") {
			next.ServeHTTP(w, r) // the test pushing images
			return
		}
		switch {
		case strings.Contains(p, "/garbage/") && strings.Contains(p, "/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				_, _ = io.WriteString(w, "this is { not a manifest")
			}
			return
		case strings.Contains(p, "/truncated/") && strings.Contains(p, "/blobs/") && r.Method == http.MethodGet:
			rec := &bufferingWriter{header: http.Header{}}
			next.ServeHTTP(rec, r)
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			body := rec.buf.Bytes()
			if len(body) < 4096 {
				w.WriteHeader(rec.code)
				_, _ = w.Write(body)
				return
			}
			w.WriteHeader(rec.code)
			_, _ = w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // cut the connection mid-body
		case strings.Contains(p, "/corrupt/") && strings.Contains(p, "/blobs/") && r.Method == http.MethodGet:
			// The right length, the wrong bytes.
			rec := &bufferingWriter{header: http.Header{}}
			next.ServeHTTP(rec, r)
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			body := rec.buf.Bytes()
			if len(body) > 4096 {
				body[len(body)/2] ^= 0xff
			}
			w.WriteHeader(rec.code)
			_, _ = w.Write(body)
			return
		case strings.Contains(p, "/count/"):
			repo := repoOf(p)
			f.mu.Lock()
			f.requests[r.Method+" "+p]++
			f.active[repo]++
			f.peak = max(f.peak, len(f.active))
			f.mu.Unlock()
			defer func() {
				f.mu.Lock()
				if f.active[repo]--; f.active[repo] == 0 {
					delete(f.active, repo)
				}
				f.mu.Unlock()
			}()
			if strings.Contains(p, "/blobs/") {
				time.Sleep(300 * time.Millisecond) // let concurrent pulls overlap
			}
		}
		next.ServeHTTP(w, r)
	})
}

func TestIntegrationBadRegistries(t *testing.T) {
	f := &faults{requests: map[string]int{}, active: map[string]int{}}
	e := newEnv(t, envOpts{reg: testregistry.Options{Middleware: f.middleware}})
	push(t, e.reg.Addr(), "garbage:1", randomImage(t, 1024, 1), nil)
	push(t, e.reg.Addr(), "truncated:1", randomImage(t, 64<<10, 1), nil)
	push(t, e.reg.Addr(), "known:1", randomImage(t, 1024, 1), nil)
	push(t, e.reg.Addr(), "corrupt:1", randomImage(t, 64<<10, 1), nil)

	cases := []struct {
		ref  string
		want codes.Code
	}{
		{"test.local/garbage:1", codes.Unavailable},
		{"test.local/truncated:1", codes.Unavailable},
		{"test.local/corrupt:1", codes.Unavailable},
		{"test.local/unknown-repo:1", codes.NotFound},
		{"test.local/known:no-such-tag", codes.NotFound},
		{"test.local/known@sha256:" + strings.Repeat("0", 64), codes.NotFound},
		// Nothing listens there.
		{closedAddr(t) + "/x/y:1", codes.Unavailable},
		{"", codes.InvalidArgument},
		{"a b", codes.InvalidArgument},
		{"test.local/UPPER:1", codes.InvalidArgument},
		{"sha256:" + strings.Repeat("a", 64), codes.InvalidArgument},
	}
	for _, c := range cases {
		start := time.Now()
		_, err := e.pull(c.ref, nil)
		if status.Code(err) != c.want {
			t.Errorf("pull %q: %v, want %v", c.ref, err, c.want)
		} else {
			t.Logf("pull %q: %v (%s)", c.ref, err, time.Since(start).Round(time.Millisecond))
		}
	}
	e.expectNothingLeft("failed pulls")
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestIntegrationConcurrentPullsMerged(t *testing.T) {
	f := &faults{requests: map[string]int{}, active: map[string]int{}}
	e := newEnv(t, envOpts{reg: testregistry.Options{Middleware: f.middleware}})
	img := randomImage(t, 16<<10, 3)
	push(t, e.reg.Addr(), "count/merged:1", img, nil)
	wantID, _ := ids(t, img)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := e.pull("test.local/count/merged:1", nil)
			if err == nil && id != wantID {
				err = fmt.Errorf("id %s", id)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for req, n := range f.requests {
		if strings.HasPrefix(req, "GET ") && strings.Contains(req, "/blobs/") && n != 1 {
			t.Errorf("%s requested %d times", req, n)
		}
	}
	if len(f.requests) == 0 {
		t.Fatal("no requests counted")
	}
}

func TestIntegrationMaxConcurrentPulls(t *testing.T) {
	f := &faults{requests: map[string]int{}, active: map[string]int{}}
	e := newEnv(t, envOpts{reg: testregistry.Options{Middleware: f.middleware}, config: Config{MaxConcurrentPulls: 1}})
	for i := range 3 {
		push(t, e.reg.Addr(), fmt.Sprintf("count/limited%d:1", i), randomImage(t, 4096, 1), nil)
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.pull(fmt.Sprintf("test.local/count/limited%d:1", i), nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	f.mu.Lock()
	peak := f.peak
	f.mu.Unlock()
	if peak != 1 {
		t.Errorf("%d repositories pulled at once with max_concurrent_pulls = 1", peak)
	}
	if n := len(e.list()); n != 3 {
		t.Errorf("%d images", n)
	}
}

func TestIntegrationImageFsInfo(t *testing.T) {
	e := newEnv(t, envOpts{})
	// A measurement taken before the pull must not be served after it (the answer is cached).
	if _, err := e.svc.ImageFsInfo(context.Background(), &runtime.ImageFsInfoRequest{}); err != nil {
		t.Fatal(err)
	}
	e.mustPull(testregistry.E2EBusybox)
	resp, err := e.svc.ImageFsInfo(context.Background(), &runtime.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fss := resp.GetImageFilesystems()
	if len(fss) != 2 {
		t.Fatalf("%d filesystems", len(fss))
	}
	wantMounts := []string{
		filepath.Join(e.root, "io.containerd.snapshotter.v1.overlayfs"),
		filepath.Join(e.root, "io.containerd.content.v1.content"),
	}
	for i, fs := range fss {
		if fs.GetFsId().GetMountpoint() != wantMounts[i] || fs.GetUsedBytes().GetValue() == 0 || fs.GetInodesUsed().GetValue() == 0 || fs.Timestamp == 0 {
			t.Errorf("filesystem %d: %v", i, fs)
		}
		t.Logf("%s: %d bytes, %d inodes", fs.GetFsId().GetMountpoint(), fs.GetUsedBytes().GetValue(), fs.GetInodesUsed().GetValue())
	}
}

func TestIntegrationStreamImages(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.mustPull(testregistry.Pause39)
	e.mustPull(testregistry.SandboxImage)
	s := &fakeStream{}
	if err := e.svc.StreamImages(&runtime.StreamImagesRequest{}, s); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range s.sent {
		n += len(r.Images)
	}
	if n != 2 {
		t.Errorf("streamed %d images", n)
	}
}

// TestIntegrationPullCritestImages pulls every image the test registry serves (the images critest
// uses) into a fresh containerd and reports the pull times.
func TestIntegrationPullCritestImages(t *testing.T) {
	e := newEnv(t, envOpts{})
	refs := e.reg.List()
	var total time.Duration
	var lines []string
	for _, ref := range refs {
		start := time.Now()
		id, err := e.pull(ref, nil)
		d := time.Since(start)
		if err != nil {
			t.Errorf("pull %s: %v", ref, err)
			continue
		}
		total += d
		img, _ := e.svc.Image(id)
		lines = append(lines, fmt.Sprintf("%-75s %8s %9d B", ref, d.Round(100*time.Microsecond), img.Size))
	}
	t.Logf("pull times (fresh containerd, sequential):\n%s\ntotal %s for %d references", strings.Join(lines, "\n"), total.Round(time.Millisecond), len(refs))
	// Pulling an image again (content and snapshots there) costs a resolve.
	start := time.Now()
	e.mustPull(testregistry.E2EBusybox)
	t.Logf("re-pull of %s: %s", testregistry.E2EBusybox, time.Since(start).Round(100*time.Microsecond))
}

type fakeStream struct {
	sent []*runtime.StreamImagesResponse
}

func (f *fakeStream) Send(r *runtime.StreamImagesResponse) error {
	f.sent = append(f.sent, r)
	return nil
}
func (f *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeStream) SetTrailer(metadata.MD)       {}
func (f *fakeStream) Context() context.Context     { return context.Background() }
func (f *fakeStream) SendMsg(any) error            { return nil }
func (f *fakeStream) RecvMsg(any) error            { return errors.New("no") }

// TestIntegrationPullRemoveLoop measures pull + remove of one image, the loop of critest's image
// benchmark.
func TestIntegrationPullRemoveLoop(t *testing.T) {
	e := newEnv(t, envOpts{})
	const n = 15
	var pulls, removes []time.Duration
	for range n {
		start := time.Now()
		id := e.mustPull(testregistry.E2EBusybox)
		pulls = append(pulls, time.Since(start))
		start = time.Now()
		e.remove(id)
		removes = append(removes, time.Since(start))
	}
	sort.Slice(pulls, func(i, j int) bool { return pulls[i] < pulls[j] })
	sort.Slice(removes, func(i, j int) bool { return removes[i] < removes[j] })
	t.Logf("%s: pull median %s (min %s, max %s), remove median %s", testregistry.E2EBusybox,
		pulls[n/2].Round(100*time.Microsecond), pulls[0].Round(100*time.Microsecond), pulls[n-1].Round(100*time.Microsecond),
		removes[n/2].Round(100*time.Microsecond))
}

// Pulls and removes of one image racing each other: RemoveImage drops the names it deletes from
// the index without reading them back, which holds only because a pull re-making a record
// re-reads it after (refreshMu). Whatever order they ran in, the index then agrees with
// containerd's records, name by name.
func TestIntegrationPullsAndRemovesRacing(t *testing.T) {
	e := newEnv(t, envOpts{})
	ref := testregistry.E2EBusybox
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 6 {
				if _, err := e.pull(ref, nil); err != nil {
					t.Errorf("pull: %v", err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 6 {
				if _, err := e.svc.RemoveImage(context.Background(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
					t.Errorf("remove: %v", err)
				}
			}
		}()
	}
	wg.Wait()

	recs, err := e.client.ImageService().List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	inContainerd := map[string]bool{}
	for _, r := range recs {
		inContainerd[r.Name] = true
		img := e.status(r.Name)
		if img == nil {
			t.Errorf("record %q in containerd, not in the index", r.Name)
			continue
		}
		if img.Id != r.Name && !contains(img.RepoTags, r.Name) && !contains(img.RepoDigests, r.Name) {
			t.Errorf("record %q found as %v", r.Name, img)
		}
	}
	for _, img := range e.list() {
		for _, n := range append(append([]string{}, img.RepoTags...), img.RepoDigests...) {
			if !inContainerd[n] {
				t.Errorf("the index names %q, containerd has no such record", n)
			}
		}
	}
	t.Logf("after the race: %d records", len(recs))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// blobGate counts the blob downloads of cri-shim's pulls in flight, holding each for a while so
// that downloads allowed to overlap do.
type blobGate struct {
	mu     sync.Mutex
	active int
	peak   int
	blobs  int
}

func (g *blobGate) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.UserAgent(), "cri-shim") || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			next.ServeHTTP(w, r)
			return
		}
		g.mu.Lock()
		g.active++
		g.blobs++
		g.peak = max(g.peak, g.active)
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			g.active--
			g.mu.Unlock()
		}()
		time.Sleep(200 * time.Millisecond)
		next.ServeHTTP(w, r)
	})
}

// TestIntegrationMaxConcurrentDownloads: one pull of an image of 8 layers fetches at most
// max_concurrent_downloads blobs at once; with a limit of 8 the same pull overlaps more than 2,
// which shows the gate sees the overlap the limit prevents.
func TestIntegrationMaxConcurrentDownloads(t *testing.T) {
	for _, tc := range []struct {
		limit    int
		wantPeak func(int) bool
		want     string
	}{
		{2, func(p int) bool { return p >= 1 && p <= 2 }, "1..2"},
		{8, func(p int) bool { return p > 2 }, "> 2"},
	} {
		g := &blobGate{}
		e := newEnv(t, envOpts{reg: testregistry.Options{Middleware: g.middleware}, config: Config{MaxConcurrentDownloads: tc.limit}})
		push(t, e.reg.Addr(), "downloads/layers:8", randomImage(t, 64<<10, 8), nil)
		e.mustPull("test.local/downloads/layers:8")
		g.mu.Lock()
		peak, blobs := g.peak, g.blobs
		g.mu.Unlock()
		t.Logf("max_concurrent_downloads %d: %d blobs, at most %d at once", tc.limit, blobs, peak)
		if blobs < 9 {
			t.Fatalf("limit %d: %d blobs fetched, want the 8 layers and the config", tc.limit, blobs)
		}
		if !tc.wantPeak(peak) {
			t.Errorf("limit %d: %d blobs downloaded at once, want %s", tc.limit, peak, tc.want)
		}
	}
}
