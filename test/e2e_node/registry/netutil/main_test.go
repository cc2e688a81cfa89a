package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCurlPrintsTheBodyAndTheStatusCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Query().Get("msg"))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	var out, errOut bytes.Buffer
	if code := curl([]string{"-g", "-q", "-s", "--max-time", "15", "--connect-timeout", "1", "http://" + host + "/echo?msg=hi"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if out.String() != "GET hi" {
		t.Fatalf("body %q, want %q", out.String(), "GET hi")
	}

	out.Reset()
	if code := curl([]string{"-X", "POST", "-w", "%{http_code}", host + "/echo?msg=x"}, &out, &errOut); code != 0 || out.String() != "POST x200" {
		t.Fatalf("exit %d, out %q; want 0, %q", code, out.String(), "POST x200")
	}

	// Without -f an HTTP error is a success, as curl does; with it, exit 22.
	if code := curl([]string{"-s", srv.URL + "/missing"}, &out, &errOut); code != 0 {
		t.Fatalf("without -f: exit %d, want 0", code)
	}
	if code := curl([]string{"-sf", srv.URL + "/missing"}, &out, &errOut); code != 22 {
		t.Fatalf("with -f: exit %d, want 22", code)
	}
}

func TestCurlFailsLikeCurl(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var out, errOut bytes.Buffer
	if code := curl([]string{"-s", "http://" + addr + "/"}, &out, &errOut); code != 7 {
		t.Fatalf("refused connection: exit %d, want 7", code)
	}
	if code := curl([]string{"-s"}, &out, &errOut); code != 2 {
		t.Fatalf("no URL: exit %d, want 2", code)
	}
	if code := curl([]string{"-Z", "http://x/"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown option: exit %d, want 2", code)
	}
}

func TestNcSendsOverUDPAndPrintsTheAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1024)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo([]byte("got "+strings.TrimSpace(string(buf[:n]))), from)
	}()
	host, port, _ := net.SplitHostPort(pc.LocalAddr().String())
	var out, errOut bytes.Buffer
	if code := nc([]string{"-w", "1", "-u", host, port}, strings.NewReader("hostName\n"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if out.String() != "got hostName" {
		t.Fatalf("answer %q, want %q", out.String(), "got hostName")
	}
}

func TestNcTCPRoundTripAndBadUsage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1024)
		n, _ := c.Read(buf)
		c.Write(bytes.ToUpper(buf[:n]))
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	var out, errOut bytes.Buffer
	start := time.Now()
	if code := nc([]string{"-w", "2", host, port}, strings.NewReader("ping"), &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if out.String() != "PING" {
		t.Fatalf("answer %q, want PING", out.String())
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	if code := nc([]string{"onlyhost"}, strings.NewReader(""), &out, &errOut); code != 1 {
		t.Fatalf("bad usage: exit %d, want 1", code)
	}
}

func TestNmeterPrintsTheTimeWithMilliseconds(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC)
	var out, errOut bytes.Buffer
	w := &limitedWriter{w: &out, n: 2}
	if code := nmeter([]string{"-d0", "%3t"}, func() time.Time { return at }, w, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if out.String() != "03:04:05.678\n03:04:05.678\n" {
		t.Fatalf("printed %q", out.String())
	}
	if code := nmeter([]string{"-d", "0", "%c"}, func() time.Time { return at }, w, &errOut); code != 1 {
		t.Fatalf("unsupported directive: exit %d, want 1", code)
	}
}

// limitedWriter takes n writes, then fails as a closed pipe does.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n == 0 {
		return 0, fmt.Errorf("closed pipe")
	}
	l.n--
	return l.w.Write(p)
}
