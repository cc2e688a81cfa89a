// Command testregistry serves the critest conformance images from an in-memory registry on
// 127.0.0.1 until SIGTERM or SIGINT.
//
//	go run ./test/critest/testregistry/cmd/testregistry --hosts-dir DIR --ready-file FILE
//
// --hosts-dir writes containerd's registry hosts dir mirroring registry.k8s.io, gcr.io,
// k8s.gcr.io, public.ecr.aws and docker.io to the registry; --ready-file receives the registry's
// host:port (atomically) once it serves. --programs-dir takes the images' programs (pause, nginx,
// nnp) prebuilt from DIR instead of compiling them, for a machine without Go.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/cri-shim/cri-shim/test/critest/testregistry"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	hostsDir := flag.String("hosts-dir", "", "write containerd's registry hosts dir (DIR/<host>/hosts.toml) here")
	readyFile := flag.String("ready-file", "", "write the registry's host:port to this file once serving")
	verbose := flag.Bool("v", false, "log every request")
	user := flag.String("user", "", "require basic auth with this username (and --password)")
	password := flag.String("password", "", "password for --user")
	programsDir := flag.String("programs-dir", "", "read the images' programs (pause, nginx, nnp) prebuilt from this directory instead of building them with go (sets "+testregistry.ProgramsDirEnv+")")
	flag.Parse()
	if *programsDir != "" {
		os.Setenv(testregistry.ProgramsDirEnv, *programsDir)
	}

	logger := log.New(os.Stderr, "", log.LstdFlags)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	opts := testregistry.Options{Addr: *listen}
	if *verbose {
		opts.Logf = logger.Printf
	}
	if *user != "" {
		opts.BasicAuth = &testregistry.BasicAuth{Username: *user, Password: *password}
	}
	reg, err := testregistry.Start(ctx, opts)
	if err != nil {
		logger.Fatalf("testregistry: %v", err)
	}
	defer reg.Close()

	if *hostsDir != "" {
		if err := reg.WriteHostsDir(*hostsDir); err != nil {
			logger.Fatalf("testregistry: writing hosts dir: %v", err)
		}
	}
	if *readyFile != "" {
		if err := writeFileAtomic(*readyFile, []byte(reg.Addr()+"\n")); err != nil {
			logger.Fatalf("testregistry: writing ready file: %v", err)
		}
	}
	logger.Printf("testregistry: serving %d references on http://%s (hosts dir %q)", len(reg.List()), reg.Addr(), *hostsDir)

	<-ctx.Done()
	logger.Printf("testregistry: shutting down")
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
