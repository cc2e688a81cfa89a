// Command registry serves the images the Kubernetes node e2e suite (k8s.io/kubernetes v1.37.x,
// test/utils/image/manifest.go) pulls, from the critest test registry on 127.0.0.1, until SIGTERM
// or SIGINT.
//
//	go run ./test/e2e_node/registry --bin-dir DIR --netutil FILE --hosts-dir DIR --ready-file FILE
//
// It starts test/critest/testregistry (whose images and hosts dir it keeps) and pushes into it the
// e2e-test-images the suite names, built on its dynamic busybox image: agnhost and nonewprivs are
// the upstream Go programs (k8s.io/kubernetes/test/images/...) built static by
// hack/node-e2e/build.sh into --bin-dir. Images that only re-tag an existing one (nginx, pause)
// are copies. References upstream marks as unpullable (gcr.io/k8s-authenticated-test/...,
// invalid.registry.k8s.io/...) are left out on purpose: the specs that pull them expect failure.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/cri-shim/cri-shim/test/critest/testregistry"
)

const e2e = "registry.k8s.io/e2e-test-images/"

// created is the timestamp of every file and config, so digests are reproducible.
var created = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// file is one entry of an extra layer: a regular file (data), a directory (dir) or a symlink (link).
type file struct {
	name     string
	mode     int64
	data     []byte
	dir      bool
	link     string
	uid, gid int
}

// image is one image pushed on top of the test registry's.
type image struct {
	refs []string
	// from is the reference (served by the test registry) the image starts from.
	from string
	// files, when set, are added as one layer.
	files func() ([]file, error)
	// config, when set, edits the image config.
	config func(*v1.Config)
}

func main() {
	binDir := flag.String("bin-dir", "", "directory holding agnhost and nonewprivs (hack/node-e2e/build.sh's cache)")
	netutil := flag.String("netutil", "", "the static test/e2e_node/registry/netutil binary: curl and nc in the agnhost image")
	hostsDir := flag.String("hosts-dir", "", "write containerd's registry hosts dir (DIR/<host>/hosts.toml) here")
	readyFile := flag.String("ready-file", "", "write the registry's host:port to this file once every image is served")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	logger := log.New(os.Stderr, "", log.LstdFlags)
	if *binDir == "" || *netutil == "" {
		logger.Fatal("e2e registry: --bin-dir and --netutil are required")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reg, err := testregistry.Start(ctx, testregistry.Options{Addr: *listen})
	if err != nil {
		logger.Fatalf("e2e registry: %v", err)
	}
	defer reg.Close()

	imgs, err := images(ctx, reg, *binDir, *netutil)
	if err != nil {
		logger.Fatalf("e2e registry: %v", err)
	}
	n, err := push(ctx, reg, imgs)
	if err != nil {
		logger.Fatalf("e2e registry: %v", err)
	}
	if *hostsDir != "" {
		if err := reg.WriteHostsDir(*hostsDir); err != nil {
			logger.Fatalf("e2e registry: writing hosts dir: %v", err)
		}
	}
	if *readyFile != "" {
		if err := writeFileAtomic(*readyFile, []byte(reg.Addr()+"\n")); err != nil {
			logger.Fatalf("e2e registry: writing ready file: %v", err)
		}
	}
	logger.Printf("e2e registry: serving %d critest references and %d node e2e references on http://%s", len(reg.List()), n, reg.Addr())
	<-ctx.Done()
	logger.Printf("e2e registry: shutting down")
}

// images are the node e2e images (tags of k8s.io/kubernetes v1.37.2's test/utils/image/manifest.go).
func images(ctx context.Context, reg *testregistry.Registry, binDir, netutilPath string) ([]image, error) {
	read := func(n string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(binDir, n))
		if err != nil {
			return nil, fmt.Errorf("%w (build it with hack/node-e2e/build.sh)", err)
		}
		return b, nil
	}
	busybox := testregistry.E2EBusybox
	agnhost := func() ([]file, error) {
		bin, err := read("agnhost")
		if err != nil {
			return nil, err
		}
		nu, err := os.ReadFile(netutilPath)
		if err != nil {
			return nil, err
		}
		p, g, err := passwdGroup(ctx, reg, busybox)
		if err != nil {
			return nil, err
		}
		crt, key, err := selfSignedLocalhost()
		if err != nil {
			return nil, err
		}
		// As upstream's Dockerfile: a user and a group defined in the image.
		p += "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n"
		g += "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n"
		return []file{
			{name: "agnhost", mode: 0o755, data: bin},
			{name: "agnhost-2", link: "agnhost"},
			{name: "uploads", dir: true, mode: 0o777},
			// netexec --tls-cert-file /localhost.crt (the HTTPS lifecycle-hook specs): upstream
			// ships porter's test certificate; any certificate does, the kubelet not checking it.
			{name: "localhost.crt", mode: 0o644, data: crt},
			{name: "localhost.key", mode: 0o644, data: key},
			{name: "etc/passwd", mode: 0o644, data: []byte(p)},
			{name: "etc/group", mode: 0o644, data: []byte(g)},
			{name: "home/user-defined-in-image", dir: true, mode: 0o755, uid: 1000, gid: 1000},
			// Specs run "bash -c ..." in agnhost (upstream installs bash); busybox's sh does
			// what they ask of it.
			{name: "bin/bash", mode: 0o755, data: []byte("#!/bin/sh\nexec /bin/sh \"$@\"\n")},
			// curl and nc as the specs call them (busybox's have no timeouts and no UDP),
			// ahead of busybox's on PATH.
			{name: "usr/local/bin/netutil", mode: 0o755, data: nu},
			{name: "usr/local/bin/curl", link: "netutil"},
			{name: "usr/local/bin/nc", link: "netutil"},
			{name: "usr/local/bin/nmeter", link: "netutil"},
		}, nil
	}
	agnhostConfig := func(c *v1.Config) {
		c.Entrypoint = []string{"/agnhost"}
		c.Cmd = []string{"pause"}
		c.ExposedPorts = map[string]struct{}{"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {}}
	}
	nnp := func() ([]file, error) {
		bin, err := read("nonewprivs")
		if err != nil {
			return nil, err
		}
		return []file{{name: "usr/local/bin/nnp", mode: 0o4755, data: bin}}, nil
	}
	marker := func(n string) func() ([]file, error) {
		return func() ([]file, error) { return []file{{name: n, mode: 0o644, data: []byte(n + "\n")}}, nil }
	}
	// busybox's nmeter applet, which the container-lifecycle specs time their logs with.
	nmeter := func() ([]file, error) {
		nu, err := os.ReadFile(netutilPath)
		if err != nil {
			return nil, err
		}
		return []file{
			{name: "usr/local/bin/netutil", mode: 0o755, data: nu},
			{name: "usr/local/bin/nmeter", link: "netutil"},
		}, nil
	}
	return []image{
		{refs: []string{e2e + "busybox:1.37.0-2", e2e + "busybox:1.36.1-1"}, from: busybox, files: nmeter},
		{refs: []string{e2e + "agnhost:2.66.1", e2e + "agnhost:2.55"}, from: busybox, files: agnhost, config: agnhostConfig},
		{refs: []string{e2e + "nginx:1.27.0-2"}, from: testregistry.E2ENginx},
		{refs: []string{e2e + "nginx:1.28.0-2"}, from: testregistry.E2ENginx, files: marker("nginx-1.28")},
		{refs: []string{e2e + "nonewprivs:1.4"}, from: busybox, files: nnp, config: func(c *v1.Config) { c.Cmd = []string{"nnp"} }},
		{refs: []string{e2e + "nonroot:1.5"}, from: busybox, config: func(c *v1.Config) { c.User = "1234" }},
		// util-linux's ipcs in upstream's image: the test registry's busybox carries a stand-in.
		{refs: []string{e2e + "ipc-utils:1.4"}, from: busybox, files: marker("ipc-utils")},
		// Upstream's is Debian with dnsutils: the specs ask it for hostname -f, which the dynamic
		// busybox answers through glibc and /etc/hosts as well.
		{refs: []string{e2e + "glibc-dns-testing:2.1.1"}, from: busybox, files: marker("glibc-dns-testing")},
		{refs: []string{e2e + "kitten:1.8"}, from: busybox, files: marker("kitten")},
		{refs: []string{e2e + "nautilus:1.8"}, from: busybox, files: marker("nautilus")},
		{refs: []string{"registry.k8s.io/pause:3.10.2"}, from: testregistry.SandboxImage},
	}, nil
}

// selfSignedLocalhost is a certificate for localhost and 127.0.0.1 and its key, PEM.
func selfSignedLocalhost() ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    created,
		NotAfter:     created.AddDate(100, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// push builds every image from its base in reg and pushes it under each of its references.
func push(ctx context.Context, reg *testregistry.Registry, imgs []image) (int, error) {
	n := 0
	for _, im := range imgs {
		base, err := pull(ctx, reg, im.from)
		if err != nil {
			return n, err
		}
		img, err := build(base, im)
		if err != nil {
			return n, fmt.Errorf("image %s: %w", im.refs[0], err)
		}
		for _, ref := range im.refs {
			local, err := reg.LocalRef(ref)
			if err != nil {
				return n, err
			}
			dst, err := name.ParseReference(local, name.Insecure)
			if err != nil {
				return n, err
			}
			if err := remote.Write(dst, img, remote.WithContext(ctx)); err != nil {
				return n, fmt.Errorf("pushing %s: %w", ref, err)
			}
			n++
		}
	}
	return n, nil
}

func pull(ctx context.Context, reg *testregistry.Registry, ref string) (v1.Image, error) {
	local, err := reg.LocalRef(ref)
	if err != nil {
		return nil, err
	}
	r, err := name.ParseReference(local, name.Insecure)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("base image %s: %w", ref, err)
	}
	return img, nil
}

func build(base v1.Image, im image) (v1.Image, error) {
	img := base
	if im.files != nil {
		files, err := im.files()
		if err != nil {
			return nil, err
		}
		data, err := tarOf(files)
		if err != nil {
			return nil, err
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{
			Created: v1.Time{Time: created}, CreatedBy: "cri-shim node e2e registry: " + im.refs[0],
		}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	if im.config != nil {
		im.config(&cf.Config)
	}
	return mutate.ConfigFile(img, cf)
}

// tarOf is a layer holding files, each parent directory listed before it.
func tarOf(files []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	for _, f := range files {
		parts := strings.Split(f.name, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if seen[d] {
				continue
			}
			seen[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: created}); err != nil {
				return nil, err
			}
		}
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: created}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
			seen[h.Name] = true
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// passwdGroup reads /etc/passwd and /etc/group of a test registry image, to extend them.
func passwdGroup(ctx context.Context, reg *testregistry.Registry, ref string) (string, string, error) {
	img, err := pull(ctx, reg, ref)
	if err != nil {
		return "", "", err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var p, g string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", "", err
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "etc/passwd", "/etc/passwd":
			b, err := io.ReadAll(tr)
			if err != nil {
				return "", "", err
			}
			p = string(b)
		case "etc/group", "/etc/group":
			b, err := io.ReadAll(tr)
			if err != nil {
				return "", "", err
			}
			g = string(b)
		}
	}
	if p == "" || g == "" {
		return "", "", fmt.Errorf("%s has no /etc/passwd or /etc/group", ref)
	}
	return p, g, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.tmp-%d", filepath.Base(path), os.Getpid()))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
