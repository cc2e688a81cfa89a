package lsm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// realParser is an apparmor_parser and the profile dir it includes from: the extracted apparmor
// package at $CRI_SHIM_APPARMOR_ROOT (apt-get download apparmor && dpkg-deb -x apparmor_*.deb
// DIR), else the installed one.
func realParser(t *testing.T) (bin, base string) {
	if root := os.Getenv("CRI_SHIM_APPARMOR_ROOT"); root != "" {
		return filepath.Join(root, "sbin", "apparmor_parser"), filepath.Join(root, "etc", "apparmor.d")
	}
	bin, err := parserPath()
	if err != nil {
		t.Skip("no apparmor_parser here: set CRI_SHIM_APPARMOR_ROOT to an extracted apparmor package to compile the profiles")
	}
	return bin, "/etc/apparmor.d"
}

// TestDefaultProfilesCompile compiles containerd's default profile, as rendered for both kinds of
// host (testdata), with the real apparmor_parser, without loading it (-Q): the kernel here need
// not have AppArmor.
func TestDefaultProfilesCompile(t *testing.T) {
	bin, base := realParser(t)
	for _, f := range []string{"default-profile.bare.apparmor", "default-profile.debian.apparmor"} {
		p, err := filepath.Abs(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := runParser(context.Background(), bin, time.Minute, "-Q", "-K", "--base", base, "-I", base, "--config-file", "/dev/null", p); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestParserErrorCarriesOutput: a profile the parser rejects fails with the parser's own message.
func TestParserErrorCarriesOutput(t *testing.T) {
	bin, base := realParser(t)
	p := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(p, []byte("profile bad { blah }\n"), 0o644)
	err := runParser(context.Background(), bin, time.Minute, "-Q", "-K", "--base", base, "--config-file", "/dev/null", p)
	if err == nil || !strings.Contains(err.Error(), "AppArmor parser error") {
		t.Fatalf("err %v, want the parser's message", err)
	}
}

// TestParserLoadInvocation: the default loader runs apparmor_parser -Kr on a file holding the
// profile, as containerd does, and removes the file; a failing parser's output is in the error.
func TestParserLoadInvocation(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	script := "#!/bin/sh\necho \"$@\" > " + record + "\ncat \"$2\" >> " + record + "\n[ -z \"$FAIL\" ] || { echo 'parser says no' >&2; exit 1; }\n"
	if err := os.WriteFile(filepath.Join(dir, "apparmor_parser"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	if err := parserLoad(context.Background(), "profile x {}\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(record)
	args, text, _ := strings.Cut(string(b), "\n")
	file := strings.TrimPrefix(args, "-Kr ")
	if !strings.HasPrefix(args, "-Kr ") || text != "profile x {}\n" {
		t.Fatalf("parser ran with %q on %q", args, text)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("profile file %s left behind: %v", file, err)
	}
	t.Setenv("FAIL", "1")
	if err := parserLoad(context.Background(), "profile x {}\n"); err == nil || !strings.Contains(err.Error(), "parser says no") {
		t.Fatalf("err %v, want the parser's output", err)
	}
}
