// Command cri-shim is a Kubernetes CRI runtime on containerd.
//
//	cri-shim [flags]              run the daemon
//	cri-shim version              print the version
//	cri-shim config default       print every config key with its default
//	cri-shim pull [flags] IMAGE   pull an image as the daemon would
//	cri-shim gc --dry-run         print what the container GC policy would remove
//	cri-shim pods COMMAND         standalone pods: apply, list, describe, logs, delete
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/internal/sdnotify"
	"github.com/sirupsen/logrus"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cri-shim:", err)
		os.Exit(1)
	}
}

func usage(fs *flag.FlagSet) func() {
	return func() {
		fmt.Fprintf(fs.Output(), `Usage:
  cri-shim [flags]             run the CRI daemon
  cri-shim version             print the version
  cri-shim config default      print every config key with its default and a comment
  cri-shim config oci-spec [--oci-version V]  print containerd's default OCI spec (a base_runtime_spec to edit)
  cri-shim pull [flags] IMAGE  pull an image into cri-shim's containerd namespace
  cri-shim gc --dry-run        print the containers the config's GC policy would remove now
  cri-shim pods COMMAND        standalone pods: apply FILE, list, describe NAME, logs NAME [-c C] [-f], delete NAME

Flags (each overrides the config key it names):
`)
		fs.PrintDefaults()
	}
}

func run(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "version", "--version":
			fmt.Printf("cri-shim %s\nCRI API: v1\n", version)
			return nil
		case "config":
			if len(args) == 2 && args[1] == "default" {
				var buf bytes.Buffer
				if err := config.WriteDefault(&buf); err != nil {
					return err
				}
				_, err := os.Stdout.Write(buf.Bytes())
				return err
			}
			if len(args) >= 2 && args[1] == "oci-spec" {
				return ociSpecMain(args[2:], os.Stdout)
			}
			return errors.New("usage: cri-shim config default | cri-shim config oci-spec [--oci-version V]")
		}
	}
	sub := "daemon"
	if len(args) > 0 && (args[0] == "pull" || args[0] == "gc" || args[0] == "pods") {
		sub, args = args[0], args[1:]
	}

	fs := flag.NewFlagSet("cri-shim", flag.ContinueOnError)
	fs.Usage = usage(fs)
	configPath := fs.String("config", "", "TOML config file (default "+config.DefaultPath+" when it exists)")
	scratch := config.Default()
	bindFlags(fs, &scratch)
	// pull's own flags, handed on to it.
	var pullFlags []string
	if sub == "pull" {
		for _, name := range []string{"creds", "username", "creds-file", "auth", "policy"} {
			name := name
			fs.Func(name, "pull: "+map[string]string{
				"creds":      "registry user USER; the password is asked on the terminal or read with --password-stdin (never on the command line)",
				"username":   "same as --creds USER",
				"creds-file": "file holding USER:PASSWORD, readable by its owner only",
				"auth":       "refused: use $CRICTL_AUTH (base64 of USER:PASSWORD); $CRICTL_CREDS takes USER[:PASSWORD]",
				"policy":     "pull policy: Always, IfNotPresent or Never"}[name],
				func(v string) error { pullFlags = append(pullFlags, "--"+name, v); return nil })
		}
		fs.BoolFunc("password-stdin", "pull: read the password of --creds USER from stdin",
			func(v string) error { pullFlags = append(pullFlags, "--password-stdin="+v); return nil })
	}
	var dryRun bool
	if sub == "gc" {
		fs.BoolVar(&dryRun, "dry-run", false, "gc: print what would be removed, remove nothing")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	// The daemon reloads its config on SIGHUP (systemctl reload) and is never killed by it.
	var hup chan os.Signal
	if sub == "daemon" {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	// The config files, then the flags over them, then validation: at start and at every reload.
	load := func() (config.Config, []string, error) {
		configDir := ""
		if flagSet(fs, "config-dir") {
			configDir = scratch.ConfigDir
		}
		cfg, files, err := config.LoadFiles(*configPath, configDir)
		if err != nil {
			return cfg, nil, err
		}
		if sub == "daemon" {
			// The daemon acts as root on what its config says (trusted_dirs.go).
			if err := checkTrustedConfig(files, cfg.ConfigDir); err != nil {
				return cfg, nil, err
			}
		}
		applyFlags(fs, &scratch, &cfg)
		if err := cfg.Validate(); err != nil {
			return cfg, nil, fmt.Errorf("invalid config:\n%w", err)
		}
		return cfg, files, nil
	}
	cfg, files, err := load()
	if err != nil {
		return err
	}
	if err := setupLogging(cfg); err != nil {
		return err
	}
	logrus.WithField("files", strings.Join(files, ",")).Debug("config loaded")
	for _, w := range cfg.Warnings() {
		logrus.Warn(w)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch sub {
	case "pull":
		if fs.NArg() != 1 {
			return errors.New(pullUsage)
		}
		return pullMain(ctx, cfg, append(pullFlags, fs.Arg(0)))
	case "gc":
		if fs.NArg() != 0 {
			return errors.New("usage: cri-shim gc --dry-run [daemon flags]")
		}
		return gcMain(ctx, cfg, dryRun)
	case "pods":
		return podsMain(ctx, cfg, fs.Args())
	default:
		if fs.NArg() != 0 {
			return fmt.Errorf("unexpected arguments %q (see cri-shim --help)", fs.Args())
		}
		return runDaemon(ctx, cfg, service{notify: sdnotify.FromEnv(), reload: hup, load: load})
	}
}

func setupLogging(cfg config.Config) error {
	logrus.SetOutput(os.Stderr)
	return applyLogSettings(cfg)
}

// applyLogSettings sets the log level and format of cfg.
func applyLogSettings(cfg config.Config) error {
	level, err := logrus.ParseLevel(cfg.LogLevel)
	if err != nil {
		return err
	}
	logrus.SetLevel(level)
	if cfg.LogFormat == "json" {
		logrus.SetFormatter(&logrus.JSONFormatter{TimestampFormat: "2006-01-02T15:04:05.000000000Z07:00"})
	} else {
		logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
	}
	return nil
}
