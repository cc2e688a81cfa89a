package testregistry

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// programSources are the tiny static programs some images carry (pause, nginx, nnp).
//
//go:embed programs
var programSources embed.FS

var (
	programsOnce sync.Once
	programBins  map[string][]byte
	programsErr  error
)

// ProgramsDirEnv names a directory of prebuilt programs, one executable per directory under
// programs/ (pause, nginx, nnp), built as buildPrograms builds them: when set, the registry reads
// them from there instead of compiling them, so it runs where there is no Go toolchain (the
// test-node guest).
const ProgramsDirEnv = "TESTREGISTRY_PROGRAMS_DIR"

// programs returns the binaries by name, once per process: read from $TESTREGISTRY_PROGRAMS_DIR
// when set, else built from the sources under programs/ (CGO_ENABLED=0, linux/amd64, reproducible
// flags).
func programs() (map[string][]byte, error) {
	programsOnce.Do(func() {
		if dir := os.Getenv(ProgramsDirEnv); dir != "" {
			programBins, programsErr = readPrograms(dir)
			return
		}
		programBins, programsErr = buildPrograms()
	})
	return programBins, programsErr
}

// ProgramNames are the programs the images carry, one per directory under programs/.
func ProgramNames() ([]string, error) {
	entries, err := programSources.ReadDir("programs")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// readPrograms reads every program of ProgramNames from dir.
func readPrograms(dir string) (map[string][]byte, error) {
	names, err := ProgramNames()
	if err != nil {
		return nil, err
	}
	bins := map[string][]byte{}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("prebuilt program %s (%s=%s): %w", n, ProgramsDirEnv, dir, err)
		}
		bins[n] = data
	}
	return bins, nil
}

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	return "/usr/local/go/bin/go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func buildPrograms() (map[string][]byte, error) {
	tmp, err := os.MkdirTemp("", "testregistry-programs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	var names []string
	err = fs.WalkDir(programSources, "programs", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(tmp, filepath.FromSlash(p))
		if d.IsDir() {
			if strings.Count(p, "/") == 1 {
				names = append(names, d.Name())
			}
			return os.MkdirAll(dst, 0o755)
		}
		data, err := programSources.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte("module testprograms\n\ngo 1.22\n"), 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(goBinary(), "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", out+string(filepath.Separator), "./programs/...")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1",
		"GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local", "GO111MODULE=on", "GOEXPERIMENT=")
	if os.Getenv("GOCACHE") == "" {
		if _, err := os.UserCacheDir(); err != nil { // no HOME: go build would refuse to run
			cmd.Env = append(cmd.Env, "GOCACHE="+filepath.Join(os.TempDir(), "testregistry-gocache"))
		}
	}
	if o, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the test image programs: %v\n%s", err, o)
	}
	bins := map[string][]byte{}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(out, n))
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", n, err)
		}
		bins[n] = data
	}
	return bins, nil
}
