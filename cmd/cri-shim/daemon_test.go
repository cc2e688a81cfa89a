package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := checkPrivateDir("root_dir", dir); err != nil {
		t.Fatalf("0711 refused: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	err := checkPrivateDir("root_dir", dir)
	if err == nil || !strings.HasPrefix(err.Error(), "root_dir:") || !strings.Contains(err.Error(), "writable by others") {
		t.Fatalf("world-writable dir: %v", err)
	}
	if err := checkPrivateDir("state_dir", filepath.Join(dir, "absent")); err == nil || !strings.HasPrefix(err.Error(), "state_dir:") {
		t.Fatalf("absent dir: %v", err)
	}
}
