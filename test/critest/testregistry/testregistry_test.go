package testregistry

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	toml "github.com/pelletier/go-toml/v2"
)

var shared *Registry

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	r, err := Start(ctx, Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the test registry: %v\n", err)
		os.Exit(1)
	}
	shared = r
	code := m.Run()
	_ = r.Close()
	os.Exit(code)
}

// critestRefs are the references critest v1.37.0 pulls on linux/amd64 (but the digest-pinned
// test-image-digest, which cannot be rebuilt) plus the runtime's sandbox image.
var critestRefs = []string{
	"registry.k8s.io/e2e-test-images/busybox:1.29-2",
	"registry.k8s.io/e2e-test-images/nginx:1.14-2",
	"registry.k8s.io/e2e-test-images/httpd:2.4.39-4",
	"registry.k8s.io/e2e-test-images/nonewprivs:1.3",
	"registry.k8s.io/pause:3.9",
	"k8s.gcr.io/pause:3.9",
	"registry.k8s.io/pause:3.10",
	"gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-user-username:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-user-uid-group:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-user-username-group:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-1:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-2:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-3:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-tags:1",
	"gcr.io/k8s-staging-cri-tools/test-image-tags:2",
	"gcr.io/k8s-staging-cri-tools/test-image-tags:3",
	"gcr.io/k8s-staging-cri-tools/test-image-latest:latest",
	"gcr.io/k8s-staging-cri-tools/test-image-tag:test",
	"gcr.io/k8s-staging-cri-tools/test-image-tag:all",
	"public.ecr.aws/docker/library/busybox:1",
	"public.ecr.aws/docker/library/busybox:1-uclibc",
	"public.ecr.aws/docker/library/busybox:1-musl",
	"public.ecr.aws/docker/library/busybox:1-glibc",
	"public.ecr.aws/docker/library/busybox:1.35.0-glibc",
	"public.ecr.aws/docker/library/busybox:latest",
}

// get fetches an upstream reference from a registry over HTTP.
func get(t *testing.T, r *Registry, upstream string, opts ...remote.Option) v1.Image {
	t.Helper()
	local, err := r.LocalRef(upstream)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(local)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		t.Fatalf("remote.Get(%s): %v", local, err)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatalf("%s: %v", local, err)
	}
	return img
}

func configOf(t *testing.T, upstream string) *v1.ConfigFile {
	t.Helper()
	cf, err := get(t, shared, upstream).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

func imageID(t *testing.T, upstream string) v1.Hash {
	t.Helper()
	h, err := get(t, shared, upstream).ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestEveryReferenceResolves(t *testing.T) {
	list := shared.List()
	for _, want := range critestRefs {
		if !slices.Contains(list, want) {
			t.Errorf("List() lacks %s", want)
		}
	}
	for _, ref := range list {
		img := get(t, shared, ref)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if cf.OS != "linux" || cf.Architecture != "amd64" {
			t.Errorf("%s: platform %s/%s", ref, cf.OS, cf.Architecture)
		}
		if !slices.ContainsFunc(cf.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=/") }) {
			t.Errorf("%s: no PATH in env %q", ref, cf.Config.Env)
		}
		if !cf.Created.Time.Equal(created) {
			t.Errorf("%s: created %v", ref, cf.Created)
		}
	}
}

// TestOverridePathLayout checks the URL layout a containerd mirror with override_path = true uses.
func TestOverridePathLayout(t *testing.T) {
	req, _ := http.NewRequest(http.MethodHead, "http://"+shared.Addr()+"/v2/registry.k8s.io/e2e-test-images/busybox/manifests/1.29-2", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Docker-Content-Digest"), "sha256:") {
		t.Fatalf("HEAD manifest: %s, digest %q", resp.Status, resp.Header.Get("Docker-Content-Digest"))
	}
}

func TestImageIDs(t *testing.T) {
	if a, b := imageID(t, "registry.k8s.io/pause:3.9"), imageID(t, "k8s.gcr.io/pause:3.9"); a != b {
		t.Errorf("pause:3.9 has two IDs: %s and %s", a, b)
	}
	if imageID(t, SandboxImage) == imageID(t, Pause39) {
		t.Errorf("the sandbox image has the ID of pause:3.9")
	}
	tags := imageID(t, criTools+"test-image-tags:1")
	for _, r := range []string{criTools + "test-image-tags:2", criTools + "test-image-tags:3"} {
		if imageID(t, r) != tags {
			t.Errorf("%s differs from test-image-tags:1", r)
		}
	}
	distinct := [][]string{
		{criTools + "test-image-1:latest", criTools + "test-image-2:latest", criTools + "test-image-3:latest"},
		{criTools + "test-image-latest:latest", criTools + "test-image-tag:test", criTools + "test-image-tag:all", criTools + "test-image-tags:1"},
		{ecrBusybox + "1", ecrBusybox + "1-uclibc", ecrBusybox + "1-musl", ecrBusybox + "1-glibc", ecrBusybox + "1.35.0-glibc", ecrBusybox + "latest"},
	}
	for _, set := range distinct {
		seen := map[v1.Hash]string{}
		for _, r := range set {
			id := imageID(t, r)
			if other, ok := seen[id]; ok {
				t.Errorf("%s and %s share the ID %s", r, other, id)
			}
			seen[id] = r
		}
	}
}

func TestImageConfigs(t *testing.T) {
	users := map[string]string{
		criTools + "test-image-user-uid:latest":            "1002",
		criTools + "test-image-user-username:latest":       "www-data",
		criTools + "test-image-user-uid-group:latest":      "1003:1004",
		criTools + "test-image-user-username-group:latest": "www-data:1004",
		criTools + "test-image-predefined-group:latest":    "1000",
		Pause39:      "65535:65535",
		SandboxImage: "65535:65535",
	}
	for ref, want := range users {
		if got := configOf(t, ref).Config.User; got != want {
			t.Errorf("%s: User %q, want %q", ref, got, want)
		}
	}

	if c := configOf(t, E2EBusybox).Config; !slices.Equal(c.Cmd, []string{"sh"}) {
		t.Errorf("busybox Cmd %q", c.Cmd)
	}
	for _, ref := range []string{E2ENginx, HostnetNginx} {
		c := configOf(t, ref).Config
		if _, ok := c.ExposedPorts["80/tcp"]; !ok || !slices.Equal(c.Cmd, []string{"nginx", "-g", "daemon off;"}) {
			t.Errorf("%s: ExposedPorts %v, Cmd %q", ref, c.ExposedPorts, c.Cmd)
		}
	}
	if c := configOf(t, E2EHttpd).Config; c.StopSignal != "SIGWINCH" || c.WorkingDir != "/usr/local/apache2" ||
		!slices.Equal(c.Cmd, []string{"httpd-foreground"}) {
		t.Errorf("httpd: StopSignal %q, WorkingDir %q, Cmd %q", c.StopSignal, c.WorkingDir, c.Cmd)
	}
	if c := configOf(t, E2ENonewprivs).Config; !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/nnp"}) {
		t.Errorf("nonewprivs Entrypoint %q", c.Entrypoint)
	}
	if c := configOf(t, Pause39).Config; !slices.Equal(c.Entrypoint, []string{"/pause"}) {
		t.Errorf("pause Entrypoint %q", c.Entrypoint)
	}
}

type fsEntry struct {
	hdr  *tar.Header
	data []byte
}

// files returns the flattened file system of an image.
func files(t *testing.T, upstream string) map[string]fsEntry {
	t.Helper()
	rc := mutate.Extract(get(t, shared, upstream))
	defer rc.Close()
	out := map[string]fsEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(strings.TrimPrefix(h.Name, "/"), "/")] = fsEntry{h, data}
	}
}

func TestImageFiles(t *testing.T) {
	dyn := files(t, E2EBusybox)
	for _, p := range []string{"bin/busybox", "bin/sh", "bin/ls", "bin/pgrep", "bin/ipcs", "lib64/ld-linux-x86-64.so.2", "etc/passwd", "etc/group", "tmp"} {
		if _, ok := dyn[p]; !ok {
			t.Errorf("e2e busybox lacks /%s", p)
		}
	}
	if h := dyn["bin/ls"].hdr; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "bin/busybox" {
		t.Errorf("/bin/ls is not a hard link to /bin/busybox: %+v", h)
	}
	if h := dyn["tmp"].hdr; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp mode: %+v", h)
	}
	for _, u := range []string{"root:x:0:0:", "nobody:x:65534:65534:", "www-data:x:33:33:"} {
		if !strings.Contains(string(dyn["etc/passwd"].data), "\n"+u) && !strings.HasPrefix(string(dyn["etc/passwd"].data), u) {
			t.Errorf("/etc/passwd lacks %s", u)
		}
	}

	pg := files(t, criTools+"test-image-predefined-group:latest")
	if !strings.Contains(string(pg["etc/passwd"].data), "\ndefault-user:x:1000:1000:") ||
		!strings.Contains(string(pg["etc/group"].data), "\ngroup-defined-in-image:x:50000:default-user\n") {
		t.Errorf("predefined-group: passwd %q group %q", pg["etc/passwd"].data, pg["etc/group"].data)
	}

	nnp := files(t, E2ENonewprivs)["usr/local/bin/nnp"].hdr
	if nnp == nil || nnp.Mode&0o4000 == 0 || nnp.Uid != 0 {
		t.Errorf("nnp is not setuid root: %+v", nnp)
	}

	if conf := files(t, HostnetNginx)["etc/nginx/conf.d/default.conf"].data; !strings.Contains(string(conf), "listen       12003;") {
		t.Errorf("hostnet-nginx config: %q", conf)
	}
	ng := files(t, E2ENginx)
	if !strings.Contains(string(ng["etc/nginx/conf.d/default.conf"].data), "listen       80;") || ng["usr/sbin/nginx"].hdr == nil ||
		ng["usr/share/nginx/html/index.html"].hdr == nil {
		t.Errorf("nginx image incomplete")
	}

	if _, ok := files(t, Pause39)["pause"]; !ok {
		t.Errorf("pause image lacks /pause")
	}
}

func TestReproducible(t *testing.T) {
	again, err := buildCatalog()
	if err != nil {
		t.Fatal(err)
	}
	first, err := catalog()
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		a, _ := first[i].img.Digest()
		b, _ := again[i].img.Digest()
		if a != b {
			t.Errorf("%s: digest %s, then %s", first[i].refs[0], a, b)
		}
	}
}

func TestLocalRef(t *testing.T) {
	for in, want := range map[string]string{
		"registry.k8s.io/pause:3.9":        shared.Addr() + "/registry.k8s.io/pause:3.9",
		"busybox":                          shared.Addr() + "/docker.io/library/busybox:latest",
		"docker.io/library/busybox:1.37.0": shared.Addr() + "/docker.io/library/busybox:1.37.0",
		"gcr.io/a/b@sha256:9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf": shared.Addr() +
			"/gcr.io/a/b@sha256:9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf",
	} {
		if got, err := shared.LocalRef(in); err != nil || got != want {
			t.Errorf("LocalRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	get(t, shared, "busybox") // docker.io short names resolve too
}

func TestHostsDir(t *testing.T) {
	dir := t.TempDir()
	if err := shared.WriteHostsDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, host := range UpstreamHosts {
		data, err := os.ReadFile(filepath.Join(dir, host, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Server       string              `toml:"server"`
			OverridePath bool                `toml:"override_path"`
			Capabilities []string            `toml:"capabilities"`
			Host         map[string]struct{} `toml:"host"`
		}
		if err := toml.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		// The local registry is the only server: no fallback that could leave the machine.
		if want := "http://" + shared.Addr() + "/v2/" + host; cfg.Server != want || len(cfg.Host) != 0 {
			t.Errorf("%s: server %q hosts %v, want only %s", host, cfg.Server, cfg.Host, want)
		}
		if !cfg.OverridePath || !slices.Equal(cfg.Capabilities, []string{"pull", "resolve"}) {
			t.Errorf("%s: %+v", host, cfg)
		}
	}
}

func TestBasicAuth(t *testing.T) {
	r, err := Start(context.Background(), Options{BasicAuth: &BasicAuth{Username: "user", Password: "secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	for _, creds := range [][2]string{{}, {"user", "wrong"}} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.Addr()+"/v2/registry.k8s.io/pause/manifests/3.9", nil)
		if creds[0] != "" {
			req.SetBasicAuth(creds[0], creds[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("credentials %q: %s, challenge %q", creds, resp.Status, resp.Header.Get("WWW-Authenticate"))
		}
	}

	local, _ := r.LocalRef(Pause39)
	ref, err := name.ParseReference(local)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(ref); err == nil {
		t.Errorf("anonymous pull succeeded")
	}
	img := get(t, r, Pause39, remote.WithAuth(&authn.Basic{Username: "user", Password: "secret"}))
	if _, err := img.ConfigFile(); err != nil {
		t.Fatal(err)
	}
}

func TestStallAfterBytes(t *testing.T) {
	const limit = 100
	r, err := Start(context.Background(), Options{StallAfterBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	img := get(t, r, Pause39) // manifest and config (smaller than a layer) are served
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + r.Addr() + "/v2/registry.k8s.io/pause/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, limit)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatalf("reading the first %d bytes: %v", limit, err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 1))
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("the download went on past %d bytes (read error %v)", limit, err)
	case <-time.After(200 * time.Millisecond):
	}
	closed := make(chan struct{})
	go func() { _ = r.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a stalled download")
	}
	if err := <-got; err == nil {
		t.Errorf("the stalled download ended without an error")
	}
}

// TestReadPrograms: a directory of prebuilt programs gives the very binaries the registry builds,
// and one that lacks a program fails naming it.
func TestReadPrograms(t *testing.T) {
	built, err := programs()
	if err != nil {
		t.Fatal(err)
	}
	names, err := ProgramNames()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"nginx", "nnp", "pause"}; !slices.Equal(names, want) {
		t.Fatalf("ProgramNames() = %v, want %v", names, want)
	}
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), built[n], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	read, err := readPrograms(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if len(read[n]) == 0 || !slices.Equal(read[n], built[n]) {
			t.Errorf("program %s read from %s differs from the built one", n, dir)
		}
	}
	if err := os.Remove(filepath.Join(dir, "nnp")); err != nil {
		t.Fatal(err)
	}
	if _, err := readPrograms(dir); err == nil || !strings.Contains(err.Error(), "prebuilt program nnp") {
		t.Fatalf("readPrograms without nnp: err = %v, want one naming nnp", err)
	}
}
