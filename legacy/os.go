package legacy

import "os"

// OSInterface collects the system calls the model makes, so that tests can fake them.
type OSInterface interface {
	Mkdir(path string, perm os.FileMode) error
	MkdirAll(path string, perm os.FileMode) error
	Symlink(oldname, newname string) error
	WriteFile(path string, data []byte, perm os.FileMode) error
	RemoveAll(path string) error
	Hostname() (string, error)
}

// RealOS does the real calls.
type RealOS struct{}

func (RealOS) Mkdir(path string, perm os.FileMode) error    { return os.Mkdir(path, perm) }
func (RealOS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }
func (RealOS) Symlink(oldname, newname string) error        { return os.Symlink(oldname, newname) }
func (RealOS) WriteFile(path string, data []byte, perm os.FileMode) error {
	return os.WriteFile(path, data, perm)
}
func (RealOS) RemoveAll(path string) error { return os.RemoveAll(path) }
func (RealOS) Hostname() (string, error)   { return os.Hostname() }

// FakeOS does nothing and succeeds.
type FakeOS struct{}

func (FakeOS) Mkdir(string, os.FileMode) error             { return nil }
func (FakeOS) MkdirAll(string, os.FileMode) error          { return nil }
func (FakeOS) Symlink(string, string) error                { return nil }
func (FakeOS) WriteFile(string, []byte, os.FileMode) error { return nil }
func (FakeOS) RemoveAll(string) error                      { return nil }
func (FakeOS) Hostname() (string, error)                   { return "fake-host", nil }
