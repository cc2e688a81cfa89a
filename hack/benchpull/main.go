// benchpull measures PullImage on both pull paths of the image service (the containerd client
// in-process, and containerd's Transfer service: image_pull_via_transfer) against one containerd
// and the local test registry, interleaved A B B A so that machine load drifts hit both alike.
// Every pull starts from nothing (the image is removed after it, content and snapshots with it).
//
// Workloads: "critest", the e2e busybox image of the test registry pulled and removed as critest's
// image benchmark does; "random", distinct images of -layers random layers of -layer-size bytes
// (nothing to share between pulls). It prints every sample and then per path the median, p95,
// mean, min and max in ms, with /proc/loadavg before and after.
//
//	sudo go run ./hack/benchpull -n 30
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/imageservice"
	"github.com/cri-shim/cri-shim/test/critest/testregistry"
)

func main() {
	n := flag.Int("n", 30, "rounds; each pulls once per path and workload")
	layers := flag.Int64("layers", 4, "layers of the random images")
	layerSize := flag.Int64("layer-size", 2<<20, "bytes of each random layer")
	bin := flag.String("containerd-bin", "/var/cache/cri-shim/bin", "dir of containerd and its shim")
	flag.Parse()
	logrus.SetLevel(logrus.WarnLevel)
	if err := run(*n, *layers, *layerSize, *bin); err != nil {
		fmt.Fprintln(os.Stderr, "benchpull:", err)
		os.Exit(1)
	}
}

type path struct {
	name string
	svc  *imageservice.Service
}

func run(n int, layers, layerSize int64, bin string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("/tmp", "benchpull-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	client, stop, err := startContainerd(dir, bin)
	if err != nil {
		return err
	}
	defer stop()
	reg, err := testregistry.Start(ctx, testregistry.Options{})
	if err != nil {
		return err
	}
	defer reg.Close()
	hosts := filepath.Join(dir, "certs.d")
	if err := reg.WriteHostsDir(hosts); err != nil {
		return err
	}
	var randomRefs []string
	for i := 0; i < 2*n; i++ {
		img, err := randomImage(layerSize, layers)
		if err != nil {
			return err
		}
		ref := fmt.Sprintf("%s/bench/random:%d", reg.Addr(), i)
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(r, img); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		randomRefs = append(randomRefs, ref)
	}

	var paths []path
	for _, via := range []bool{false, true} {
		p := path{name: "client"}
		if via {
			p.name = "transfer"
		}
		p.svc, err = imageservice.New(client, imageservice.Config{
			Namespace:              "bench-" + p.name,
			RegistryConfigPath:     hosts,
			MaxConcurrentDownloads: 3, // the config default; containerd's transfer default is 3 too
			PullViaTransfer:        via,
		})
		if err != nil {
			return err
		}
		defer p.svc.Close()
		paths = append(paths, p)
	}

	load0 := loadavg()
	samples := map[string][]time.Duration{}
	fmt.Println("round workload path ms")
	for round := 0; round < n; round++ {
		order := paths
		if round%2 == 1 {
			order = []path{paths[1], paths[0]}
		}
		for k, p := range order {
			for _, w := range []struct{ name, ref string }{
				{"critest", testregistry.E2EBusybox},
				{"random", randomRefs[2*round+k]},
			} {
				d, err := pullAndRemove(ctx, p.svc, w.ref)
				if err != nil {
					return fmt.Errorf("%s %s: %w", p.name, w.ref, err)
				}
				key := w.name + " " + p.name
				samples[key] = append(samples[key], d)
				fmt.Printf("%d %s %s %.1f\n", round, w.name, p.name, ms(d))
			}
		}
	}
	load1 := loadavg()

	fmt.Printf("\nloadavg before: %s\nloadavg after:  %s\nnproc %d\n", load0, load1, nproc())
	fmt.Printf("random images: %d layers of %d KiB\n\n", layers, layerSize>>10)
	fmt.Printf("%-18s %4s %8s %8s %8s %8s %8s\n", "workload path", "n", "median", "p95", "mean", "min", "max")
	keys := make([]string, 0, len(samples))
	for k := range samples {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := samples[k]
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		var sum time.Duration
		for _, d := range s {
			sum += d
		}
		fmt.Printf("%-18s %4d %8.1f %8.1f %8.1f %8.1f %8.1f\n", k, len(s), ms(s[len(s)/2]), ms(s[(len(s)*95+99)/100-1]),
			ms(sum/time.Duration(len(s))), ms(s[0]), ms(s[len(s)-1]))
	}
	return nil
}

// pullAndRemove times one PullImage, then removes the image (and so its content and snapshots).
func pullAndRemove(ctx context.Context, svc *imageservice.Service, ref string) (time.Duration, error) {
	start := time.Now()
	resp, err := svc.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if _, err := svc.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: resp.ImageRef}}); err != nil {
		return 0, fmt.Errorf("remove: %w", err)
	}
	return d, nil
}

func randomImage(layerSize, layers int64) (v1.Image, error) {
	img, err := random.Image(layerSize, layers)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	return mutate.ConfigFile(img, cf)
}

// startContainerd runs a containerd of its own under dir (CRI and NRI off, the default transfer
// service config) and returns a client and a function stopping it.
func startContainerd(dir, bin string) (*containerd.Client, func(), error) {
	root, state, sock := filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "c.sock")
	conf := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, root, state, sock, sock+".ttrpc", filepath.Join(root, "opt"))
	confPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(filepath.Join(bin, "containerd"), "--config", confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err != nil {
			continue
		}
		c, err := containerd.New(sock, containerd.WithTimeout(2*time.Second))
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, err := c.IsServing(cctx)
		cancel()
		if err == nil && ok {
			return c, func() { c.Close(); stop() }, nil
		}
		c.Close()
	}
	stop()
	return nil, nil, fmt.Errorf("containerd does not answer after 30s (log %s)", logf.Name())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func nproc() int {
	n := 0
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "processor") {
			n++
		}
	}
	return n
}
