//go:build linux

// Command nginx is a tiny stand-in for the nginx web server in the conformance test images.
//
// It looks like nginx to the specs: its process name is nginx, its command line reads
// "nginx: master process nginx ..." (it re-executes itself with that argv[0]), it writes its pid
// to /var/run/nginx.pid and it serves /usr/share/nginx/html on the port of the first "listen"
// directive in /etc/nginx/conf.d/default.conf (80 without one). It accepts, and ignores, the
// usual nginx flags such as -g 'daemon off;'.
package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	version  = "nginx/1.14.2"
	confFile = "/etc/nginx/conf.d/default.conf"
	htmlRoot = "/usr/share/nginx/html"
	pidFile  = "/var/run/nginx.pid"
	title    = "nginx: master process "
)

func main() {
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-v":
			fmt.Fprintf(os.Stderr, "nginx version: %s\n", version)
			return
		case "-V":
			fmt.Fprintf(os.Stderr, "nginx version: %s (cri-shim test stand-in)\n", version)
			return
		case "-t", "-T":
			fmt.Fprintf(os.Stderr, "nginx: configuration file %s test is successful\n", confFile)
			return
		case "-g", "-c", "-p", "-s", "-e":
			i++ // flag with a value: ignored
		}
	}

	if !strings.HasPrefix(os.Args[0], title) {
		// Become "nginx: master process nginx <args>" the way nginx's setproctitle does. Execute
		// the binary by its own path so that the kernel's process name (comm) stays "nginx".
		exe, err := os.Executable()
		if err != nil {
			exe = "/usr/sbin/nginx"
		}
		argv0 := title + strings.Join(append([]string{"nginx"}, args...), " ")
		err = syscall.Exec(exe, []string{argv0}, os.Environ())
		log.Printf("nginx: cannot set the process title (%v), running as is", err)
	}

	logger := log.New(os.Stderr, "", log.LstdFlags)
	if err := os.MkdirAll(filepath.Dir(pidFile), 0o755); err == nil {
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			logger.Printf("[emerg] open() %q failed: %v", pidFile, err)
		}
	}

	port := listenPort()
	mux := http.NewServeMux()
	files := http.FileServer(http.Dir(htmlRoot))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", version)
		files.ServeHTTP(w, r)
		fmt.Fprintf(os.Stdout, "%s - - [%s] \"%s %s %s\" 200 - \"-\" %q\n",
			r.RemoteAddr, time.Now().Format("02/Jan/2006:15:04:05 -0700"), r.Method, r.URL.RequestURI(), r.Proto, r.UserAgent())
	})
	srv := &http.Server{Addr: ":" + strconv.Itoa(port), Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	go func() {
		sig := <-sigs
		if sig == syscall.SIGQUIT {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		}
		_ = os.Remove(pidFile)
		os.Exit(0)
	}()

	logger.Printf("[notice] %s listening on port %d", version, port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		logger.Printf("[emerg] %v", err)
		os.Exit(1)
	}
}

// listenPort returns the port of the first "listen" directive of the default server config.
func listenPort() int {
	f, err := os.Open(confFile)
	if err != nil {
		return 80
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimSuffix(strings.TrimSpace(sc.Text()), ";"))
		if len(fields) < 2 || fields[0] != "listen" {
			continue
		}
		addr := fields[1]
		if i := strings.LastIndex(addr, ":"); i >= 0 {
			addr = addr[i+1:]
		}
		if p, err := strconv.Atoi(addr); err == nil && p > 0 && p < 65536 {
			return p
		}
	}
	return 80
}
