// Command netutil stands in for curl and nc in the node e2e agnhost image (upstream's carries
// Alpine's curl and netcat-openbsd; busybox's wget and nc lack timeouts and UDP), and for
// busybox's nmeter applet (Debian builds busybox without it) in the busybox image. It is one static
// binary run under each name (argv[0]), and does the subset the suite's specs use:
//
//	curl [-gqsSfLkI] [-m|--max-time SEC] [--connect-timeout SEC] [-o FILE] [-X METHOD]
//	     [-d|--data DATA] [-H HEADER] [-w '%{http_code}'] URL
//	nc [-u] [-z] [-v] [-w SEC] HOST PORT     (stdin sent, the answer printed)
//	nc -l [-u] [-p] PORT                     (one TCP connection or UDP datagram printed)
//	nmeter [-d MSEC] FORMAT                  (only %[N]t: the time, with N digits of seconds'
//	                                          fraction; a line each MSEC, until stdout closes)
//
// Exit codes follow curl's: 7 connection refused or unreachable, 28 timeout, 22 an HTTP error
// with -f, 3 a malformed URL, 2 a bad option; nc exits 1 on any failure.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name == "netutil" && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	switch name {
	case "curl":
		os.Exit(curl(args, os.Stdout, os.Stderr))
	case "nc", "netcat":
		os.Exit(nc(args, os.Stdin, os.Stdout, os.Stderr))
	case "nmeter":
		os.Exit(nmeter(args, time.Now, os.Stdout, os.Stderr))
	default:
		fmt.Fprintf(os.Stderr, "netutil: run as curl or nc, not %q\n", name)
		os.Exit(2)
	}
}

type curlOpts struct {
	maxTime, connectTimeout time.Duration
	out, method, data       string
	headers                 []string
	writeOut                string
	fail, silent, head      bool
	url                     string
}

func seconds(v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad number of seconds %q", v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func parseCurl(args []string) (curlOpts, error) {
	o := curlOpts{method: ""}
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		var err error
		var v string
		switch {
		case a == "-m" || a == "--max-time":
			if v, err = next(); err == nil {
				o.maxTime, err = seconds(v)
			}
		case a == "--connect-timeout":
			if v, err = next(); err == nil {
				o.connectTimeout, err = seconds(v)
			}
		case a == "-o" || a == "--output":
			o.out, err = next()
		case a == "-X" || a == "--request":
			o.method, err = next()
		case a == "-d" || a == "--data" || a == "--data-raw" || a == "--data-binary":
			o.data, err = next()
			if o.method == "" {
				o.method = http.MethodPost
			}
		case a == "-H" || a == "--header":
			v, err = next()
			o.headers = append(o.headers, v)
		case a == "-w" || a == "--write-out":
			o.writeOut, err = next()
		case a == "-I" || a == "--head":
			o.head = true
		case a == "-f" || a == "--fail":
			o.fail = true
		case a == "-s" || a == "--silent":
			o.silent = true
		case strings.HasPrefix(a, "--"):
			// --insecure, --location, --show-error, --globoff ...: no effect here.
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for _, c := range a[1:] {
				switch c {
				case 'f':
					o.fail = true
				case 's':
					o.silent = true
				case 'I':
					o.head = true
				case 'g', 'q', 'S', 'L', 'k', 'v', 'i':
				default:
					return o, fmt.Errorf("option -%c is not supported", c)
				}
			}
		default:
			o.url = a
		}
		if err != nil {
			return o, err
		}
	}
	if o.url == "" {
		return o, errors.New("no URL given")
	}
	if !strings.Contains(o.url, "://") {
		o.url = "http://" + o.url
	}
	if o.method == "" {
		o.method = http.MethodGet
		if o.head {
			o.method = http.MethodHead
		}
	}
	return o, nil
}

func curl(args []string, stdout, stderr io.Writer) int {
	o, err := parseCurl(args)
	if err != nil {
		fmt.Fprintf(stderr, "curl: %v\n", err)
		return 2
	}
	var body io.Reader
	if o.data != "" {
		body = strings.NewReader(o.data)
	}
	req, err := http.NewRequest(o.method, o.url, body)
	if err != nil {
		fmt.Fprintf(stderr, "curl: (3) %v\n", err)
		return 3
	}
	if o.data != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range o.headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	dialer := &net.Dialer{Timeout: o.connectTimeout}
	client := &http.Client{
		Timeout:   o.maxTime,
		Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil},
	}
	resp, err := client.Do(req)
	if err != nil {
		var ne net.Error
		code := 7
		if errors.As(err, &ne) && ne.Timeout() {
			code = 28
		}
		if !o.silent {
			fmt.Fprintf(stderr, "curl: (%d) %v\n", code, err)
		}
		return code
	}
	defer resp.Body.Close()
	if o.fail && resp.StatusCode >= 400 {
		if !o.silent {
			fmt.Fprintf(stderr, "curl: (22) The requested URL returned error: %d\n", resp.StatusCode)
		}
		return 22
	}
	w := stdout
	if o.out != "" && o.out != "-" {
		f, err := os.Create(o.out)
		if err != nil {
			fmt.Fprintf(stderr, "curl: (23) %v\n", err)
			return 23
		}
		defer f.Close()
		w = f
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return 28
		}
		return 18
	}
	if o.writeOut != "" {
		fmt.Fprint(stdout, strings.ReplaceAll(o.writeOut, "%{http_code}", strconv.Itoa(resp.StatusCode)))
	}
	return 0
}

type ncOpts struct {
	udp, listen, zero bool
	wait              time.Duration
	host, port        string
}

func parseNc(args []string) (ncOpts, error) {
	var o ncOpts
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || len(a) == 1 {
			rest = append(rest, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			switch a[j] {
			case 'u':
				o.udp = true
			case 'l':
				o.listen = true
			case 'z':
				o.zero = true
			case 'v', 'n', 'q':
			case 'p':
				// -p PORT: the port to listen on.
			case 'w':
				v := a[j+1:]
				if v == "" {
					if i+1 >= len(args) {
						return o, errors.New("-w needs a value")
					}
					i++
					v = args[i]
				}
				d, err := seconds(v)
				if err != nil {
					return o, err
				}
				o.wait = d
				j = len(a)
			default:
				return o, fmt.Errorf("option -%c is not supported", a[j])
			}
		}
	}
	switch {
	case o.listen && len(rest) == 1:
		o.port = rest[0]
	case !o.listen && len(rest) == 2:
		o.host, o.port = rest[0], rest[1]
	default:
		return o, errors.New("usage: nc [-uzv] [-w SEC] HOST PORT | nc -l [-u] [-p] PORT")
	}
	return o, nil
}

func nc(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseNc(args)
	if err != nil {
		fmt.Fprintf(stderr, "nc: %v\n", err)
		return 1
	}
	if err := runNc(o, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "nc: %v\n", err)
		return 1
	}
	return 0
}

func runNc(o ncOpts, stdin io.Reader, stdout io.Writer) error {
	if o.listen {
		return ncListen(o, stdout)
	}
	addr := net.JoinHostPort(o.host, o.port)
	if o.udp {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		data, err := io.ReadAll(stdin)
		if err != nil {
			return err
		}
		if _, err := conn.Write(data); err != nil {
			return err
		}
		wait := o.wait
		if wait == 0 {
			wait = 2 * time.Second
		}
		buf := make([]byte, 65536)
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil // no answer within -w: as netcat, not an error
			}
			return err
		}
		_, err = stdout.Write(buf[:n])
		return err
	}
	d := net.Dialer{Timeout: o.wait}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if o.zero {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stdin)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- err
	}()
	if o.wait > 0 {
		_ = conn.SetReadDeadline(time.Now().Add(o.wait))
	}
	_, err = io.Copy(stdout, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

func ncListen(o ncOpts, stdout io.Writer) error {
	addr := net.JoinHostPort("", o.port)
	if o.udp {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		defer pc.Close()
		buf := make([]byte, 65536)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		_, err = stdout.Write(buf[:n])
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = io.Copy(stdout, conn)
	return err
}

// nmeter prints the FORMAT line every -d milliseconds until writing fails (the reader went away).
// Only the %[N]t (time of day in UTC, HH:MM:SS with N fraction digits) and %% directives are
// supported: the suite's container-lifecycle specs take milliseconds from `nmeter -d0 '%3t'`.
func nmeter(args []string, now func() time.Time, stdout, stderr io.Writer) int {
	delay := time.Second
	format := ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-d" && i+1 < len(args):
			i++
			ms, err := strconv.Atoi(args[i])
			if err != nil || ms < 0 {
				fmt.Fprintf(stderr, "nmeter: bad delay %q\n", args[i])
				return 1
			}
			delay = time.Duration(ms) * time.Millisecond
		case strings.HasPrefix(a, "-d") && len(a) > 2:
			ms, err := strconv.Atoi(a[2:])
			if err != nil || ms < 0 {
				fmt.Fprintf(stderr, "nmeter: bad delay %q\n", a[2:])
				return 1
			}
			delay = time.Duration(ms) * time.Millisecond
		default:
			format = a
		}
	}
	if format == "" {
		fmt.Fprintln(stderr, "usage: nmeter [-d MSEC] FORMAT")
		return 1
	}
	for {
		line, err := nmeterLine(format, now().UTC())
		if err != nil {
			fmt.Fprintf(stderr, "nmeter: %v\n", err)
			return 1
		}
		if _, err := io.WriteString(stdout, line+"\n"); err != nil {
			return 0
		}
		time.Sleep(delay)
	}
}

func nmeterLine(format string, t time.Time) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		i++
		digits := 0
		for i < len(format) && format[i] >= '0' && format[i] <= '9' {
			digits = digits*10 + int(format[i]-'0')
			i++
		}
		if i >= len(format) {
			return "", fmt.Errorf("format %q ends in a directive", format)
		}
		switch format[i] {
		case '%':
			b.WriteByte('%')
		case 't':
			b.WriteString(t.Format("15:04:05"))
			if digits > 0 {
				frac := fmt.Sprintf("%09d", t.Nanosecond())
				b.WriteString("." + frac[:min(digits, 9)])
			}
		default:
			return "", fmt.Errorf("directive %%%c is not supported", format[i])
		}
	}
	return b.String(), nil
}
