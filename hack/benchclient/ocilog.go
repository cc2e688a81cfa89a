package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
)

// How many times the OCI runtime (runc, crun) ran per pod started: bench.sh points the runtimes at
// a wrapper that appends its arguments ("$*") to a log, one line a run, and execs the real binary.
// The throughput phase counts the lines it added, by subcommand.

// ociValueFlags are the global flags of runc and crun that take their value as the next argument
// (go-runc, which the shim uses, passes them so).
var ociValueFlags = map[string]bool{
	"--root": true, "--log": true, "--log-format": true, "--log-level": true, "--criu": true,
	"--rootless": true, "--cgroup-manager": true,
}

// ociSubcommand is the subcommand of one logged command line: its first argument that is neither
// a flag nor a global flag's value; "(none)" for a run without one (e.g. --version).
func ociSubcommand(line string) string {
	args := strings.Fields(line)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if ociValueFlags[a] {
			i++
			continue
		}
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return "(none)"
}

// ociLogSize is where the log ends now (0 when the wrapper has not run yet).
func ociLogSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// countOCIRuns counts the runs the log holds from byte offset from on, by subcommand.
func countOCIRuns(path string, from int64) (map[string]int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return nil, err
	}
	runs := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			runs[ociSubcommand(sc.Text())]++
		}
	}
	return runs, sc.Err()
}
