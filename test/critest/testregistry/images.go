package testregistry

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// created is the timestamp of every file, history entry and image config, so digests are
// reproducible.
var created = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// Sources of the busybox binaries (installed by hack/setup.sh). Override them with
// TESTREGISTRY_STATIC_BUSYBOX / TESTREGISTRY_DYNAMIC_BUSYBOX.
const (
	defaultStaticBusybox = "/bin/busybox"
	dynamicBusyboxSuffix = "busybox-dyn/bin/busybox"
)

// StaticBusybox is the statically linked busybox (Debian's busybox-static) of the cri-tools images.
func StaticBusybox() string {
	if p := os.Getenv("TESTREGISTRY_STATIC_BUSYBOX"); p != "" {
		return p
	}
	return defaultStaticBusybox
}

// DynamicBusybox is the dynamically linked busybox (Debian's busybox, extracted by hack/setup.sh)
// of the e2e images.
func DynamicBusybox() string {
	if p := os.Getenv("TESTREGISTRY_DYNAMIC_BUSYBOX"); p != "" {
		return p
	}
	cache := os.Getenv("CRI_SHIM_CACHE")
	if cache == "" {
		cache = "/var/cache/cri-shim"
	}
	return filepath.Join(cache, dynamicBusyboxSuffix)
}

// Well-known references.
const (
	E2EBusybox      = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	E2ENginx        = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	E2EHttpd        = "registry.k8s.io/e2e-test-images/httpd:2.4.39-4"
	E2ENonewprivs   = "registry.k8s.io/e2e-test-images/nonewprivs:1.3"
	Pause39         = "registry.k8s.io/pause:3.9"
	Pause39GCR      = "k8s.gcr.io/pause:3.9"
	SandboxImage    = "registry.k8s.io/pause:3.10" // the runtime's default sandbox image
	criTools        = "gcr.io/k8s-staging-cri-tools/"
	HostnetNginx    = criTools + "hostnet-nginx-amd64:latest"
	ecrBusybox      = "public.ecr.aws/docker/library/busybox:"
	dockerIOBusybox = "docker.io/library/busybox:"
)

// pauseUser is the user of the pause images (65535:65535, like upstream).
const pauseUser = "65535:65535"

// labelKey distinguishes images that would otherwise be identical.
const labelKey = "io.cri-shim.testregistry.image"

// catalogEntry is one image and every reference it is served under.
type catalogEntry struct {
	refs []string
	img  v1.Image
}

// imageSpec describes an image of the catalog.
type imageSpec struct {
	refs    []string
	base    string // "static", "dynamic" or "" (no busybox: only extra)
	extra   func() (*layerBuilder, error)
	config  v1.Config // Env gets PATH when empty
	comment string    // history entry of the extra layer
}

var (
	catalogOnce sync.Once
	catalogVal  []catalogEntry
	catalogErr  error
)

// catalog builds all images once per process.
func catalog() ([]catalogEntry, error) {
	catalogOnce.Do(func() { catalogVal, catalogErr = buildCatalog() })
	return catalogVal, catalogErr
}

func marker(name string) func() (*layerBuilder, error) {
	return func() (*layerBuilder, error) {
		b := &layerBuilder{}
		return b.add(file(name, 0o644, nil)), nil
	}
}

func withLabel(c v1.Config, value string) v1.Config {
	c.Labels = map[string]string{labelKey: value}
	return c
}

// nginxConf is the server config of the nginx stand-in (only "listen" and "root" matter).
func nginxConf(port int) string {
	return fmt.Sprintf(`server {
    listen       %d;
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
}
`, port)
}

const indexHTML = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and working.</p>
</body>
</html>
`

func buildCatalog() ([]catalogEntry, error) {
	bins, err := programs()
	if err != nil {
		return nil, err
	}
	shell := v1.Config{Cmd: []string{"sh"}}

	nginx := func(port int) func() (*layerBuilder, error) {
		return func() (*layerBuilder, error) {
			b := &layerBuilder{}
			b.addFile("usr/sbin/nginx", 0o755, bins["nginx"])
			b.addFile("etc/nginx/conf.d/default.conf", 0o644, []byte(nginxConf(port)))
			b.addFile("usr/share/nginx/html/index.html", 0o644, []byte(indexHTML))
			b.add(dir("var/log/nginx", 0o755), dir("var/cache/nginx", 0o755))
			return b, nil
		}
	}
	pause := func() (*layerBuilder, error) {
		b := &layerBuilder{}
		return b.add(file("pause", 0o755, bins["pause"])), nil
	}
	pauseConfig := v1.Config{Entrypoint: []string{"/pause"}, User: pauseUser}

	specs := []imageSpec{
		// e2e images: dynamic busybox (its shell executes applets, see critest-images.md).
		{refs: []string{E2EBusybox}, base: "dynamic", config: shell},
		{
			refs: []string{E2ENginx}, base: "dynamic", extra: nginx(80), comment: "nginx stand-in on port 80",
			config: v1.Config{
				Cmd:          []string{"nginx", "-g", "daemon off;"},
				ExposedPorts: map[string]struct{}{"80/tcp": {}},
				StopSignal:   "SIGTERM",
			},
		},
		{
			refs: []string{HostnetNginx}, base: "dynamic", extra: nginx(12003), comment: "nginx stand-in on port 12003",
			config: v1.Config{
				Cmd:          []string{"nginx", "-g", "daemon off;"},
				ExposedPorts: map[string]struct{}{"80/tcp": {}},
				StopSignal:   "SIGQUIT",
			},
		},
		{
			refs: []string{E2EHttpd}, base: "dynamic", comment: "busybox httpd as apache",
			extra: func() (*layerBuilder, error) {
				b := &layerBuilder{}
				b.addFile("usr/local/bin/httpd-foreground", 0o755, []byte(httpdForeground))
				b.addFile("usr/local/apache2/htdocs/index.html", 0o644, []byte("<html><body><h1>It works!</h1></body></html>\n"))
				b.add(dir("usr/local/apache2/logs", 0o755))
				return b, nil
			},
			config: v1.Config{
				Cmd:          []string{"httpd-foreground"},
				ExposedPorts: map[string]struct{}{"80/tcp": {}},
				StopSignal:   "SIGWINCH",
				WorkingDir:   "/usr/local/apache2",
				Env:          []string{"PATH=/usr/local/apache2/bin:" + defaultPath, "HTTPD_PREFIX=/usr/local/apache2"},
			},
		},
		{
			refs: []string{E2ENonewprivs}, base: "dynamic", comment: "setuid-root nnp",
			extra: func() (*layerBuilder, error) {
				b := &layerBuilder{}
				b.addFile("usr/local/bin/nnp", 0o4755, bins["nnp"])
				return b, nil
			},
			config: v1.Config{Entrypoint: []string{"/usr/local/bin/nnp"}},
		},

		// pause: one image under two names, and the runtime's sandbox image with another ID.
		{refs: []string{Pause39, Pause39GCR}, extra: pause, comment: "pause", config: withLabel(pauseConfig, "pause-3.9")},
		{refs: []string{SandboxImage}, extra: pause, comment: "pause", config: withLabel(pauseConfig, "pause-3.10")},

		// cri-tools test images: static busybox.
		{refs: []string{criTools + "test-image-user-uid:latest"}, base: "static", config: v1.Config{Cmd: shell.Cmd, User: "1002"}},
		{refs: []string{criTools + "test-image-user-username:latest"}, base: "static", config: v1.Config{Cmd: shell.Cmd, User: "www-data"}},
		{refs: []string{criTools + "test-image-user-uid-group:latest"}, base: "static", config: v1.Config{Cmd: shell.Cmd, User: "1003:1004"}},
		{refs: []string{criTools + "test-image-user-username-group:latest"}, base: "static", config: v1.Config{Cmd: shell.Cmd, User: "www-data:1004"}},
		{
			refs: []string{criTools + "test-image-predefined-group:latest"}, base: "static",
			comment: "default-user (1000) in group-defined-in-image (50000)",
			extra: func() (*layerBuilder, error) {
				p := passwd + "default-user:x:1000:1000::/home/default-user:/bin/sh\n"
				g := group + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"
				b := &layerBuilder{}
				b.add(
					dir("etc", 0o755),
					file("etc/passwd", 0o644, []byte(p)),
					file("etc/group", 0o644, []byte(g)),
					file("etc/shadow", 0o640, []byte(shadowFor(p))),
					dir("home", 0o755),
				)
				b.add(entry{name: "home/default-user/", mode: 0o755, uid: 1000, gid: 1000})
				return b, nil
			},
			config: v1.Config{Cmd: shell.Cmd, User: "1000"},
		},
		{refs: []string{criTools + "test-image-1:latest"}, base: "static", extra: marker("test-image-1"), comment: "marker", config: shell},
		{refs: []string{criTools + "test-image-2:latest"}, base: "static", extra: marker("test-image-2"), comment: "marker", config: shell},
		{refs: []string{criTools + "test-image-3:latest"}, base: "static", extra: marker("test-image-3"), comment: "marker", config: shell},
		{
			refs: []string{criTools + "test-image-tags:1", criTools + "test-image-tags:2", criTools + "test-image-tags:3"},
			base: "static", extra: marker("test-image-tags"), comment: "marker", config: shell,
		},
		{refs: []string{criTools + "test-image-latest:latest"}, base: "static", extra: marker("test-image-latest"), comment: "marker", config: shell},
		{refs: []string{criTools + "test-image-tag:test"}, base: "static", extra: marker("test-image-tag-test"), comment: "marker", config: shell},
		{refs: []string{criTools + "test-image-tag:all"}, base: "static", extra: marker("test-image-tag-all"), comment: "marker", config: shell},
	}
	// The image-listing benchmark's busybox variants (distinct images), and docker.io's busybox for
	// short names.
	for _, tag := range []string{"1", "1-uclibc", "1-musl", "1-glibc", "1.35.0-glibc", "latest"} {
		specs = append(specs, imageSpec{refs: []string{ecrBusybox + tag}, base: "static", config: withLabel(shell, "ecr-busybox-"+tag)})
	}
	specs = append(specs, imageSpec{
		refs: []string{dockerIOBusybox + "latest", dockerIOBusybox + "1.37.0"}, base: "static", config: shell,
	})

	bases := map[string]v1.Layer{}
	bases["static"], err = baseLayer(StaticBusybox(), false)
	if err != nil {
		return nil, fmt.Errorf("static busybox layer: %w", err)
	}
	bases["dynamic"], err = baseLayer(DynamicBusybox(), true)
	if err != nil {
		return nil, fmt.Errorf("dynamic busybox layer: %w", err)
	}

	var out []catalogEntry
	for _, s := range specs {
		img, err := buildImage(s, bases)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.refs[0], err)
		}
		out = append(out, catalogEntry{refs: s.refs, img: img})
	}
	return out, nil
}

func baseLayer(busybox string, dynamic bool) (v1.Layer, error) {
	var extra func(*layerBuilder) error
	if dynamic {
		libs, err := sharedLibraries(busybox)
		if err != nil {
			return nil, err
		}
		extra = func(b *layerBuilder) error { return addSharedLibraries(b, libs) }
	}
	b, err := busyboxFiles(busybox, extra)
	if err != nil {
		return nil, err
	}
	return b.layer()
}

func buildImage(s imageSpec, bases map[string]v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var adds []mutate.Addendum
	if s.base != "" {
		l, ok := bases[s.base]
		if !ok {
			return nil, fmt.Errorf("unknown base %q", s.base)
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{
			Created: v1.Time{Time: created}, CreatedBy: "testregistry: " + s.base + " busybox",
		}})
	}
	if s.extra != nil {
		b, err := s.extra()
		if err != nil {
			return nil, err
		}
		l, err := b.layer()
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{
			Created: v1.Time{Time: created}, CreatedBy: "testregistry: " + s.comment,
		}})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = s.config
	if len(cf.Config.Env) == 0 {
		cf.Config.Env = []string{"PATH=" + defaultPath}
	}
	return mutate.ConfigFile(img, cf)
}
