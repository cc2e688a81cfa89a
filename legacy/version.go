package legacy

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a runtime's version, comparable with another version string.
type Version interface {
	// Compare returns -1, 0 or 1 as the version is less than, equal to or greater than other.
	Compare(other string) (int, error)
	// String returns the version.
	String() string
}

// SemVersion is a dotted numeric version ("1.7.2", "v2.2.9", "2.2.9-rc.1"); a pre-release sorts
// before its release.
type SemVersion struct {
	raw   string
	parts []int
	pre   string
}

// ParseVersion parses a dotted numeric version, with an optional leading "v", a "-pre-release"
// and a "+build" suffix.
func ParseVersion(s string) (*SemVersion, error) {
	v := strings.TrimPrefix(strings.TrimSpace(s), "v")
	v, _, _ = strings.Cut(v, "+")
	core, pre, _ := strings.Cut(v, "-")
	if core == "" {
		return nil, fmt.Errorf("invalid version %q", s)
	}
	var parts []int
	for _, p := range strings.Split(core, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("invalid version %q", s)
		}
		parts = append(parts, n)
	}
	return &SemVersion{raw: s, parts: parts, pre: pre}, nil
}

// String returns the version as given.
func (v *SemVersion) String() string { return v.raw }

// Compare compares v with other.
func (v *SemVersion) Compare(other string) (int, error) {
	o, err := ParseVersion(other)
	if err != nil {
		return 0, err
	}
	n := max(len(v.parts), len(o.parts))
	for i := 0; i < n; i++ {
		a, b := at(v.parts, i), at(o.parts, i)
		if a != b {
			if a < b {
				return -1, nil
			}
			return 1, nil
		}
	}
	switch {
	case v.pre == o.pre:
		return 0, nil
	case v.pre == "":
		return 1, nil
	case o.pre == "":
		return -1, nil
	case v.pre < o.pre:
		return -1, nil
	default:
		return 1, nil
	}
}

func at(p []int, i int) int {
	if i < len(p) {
		return p[i]
	}
	return 0
}

// FakeVersion is a Version for tests: it compares as strings.
type FakeVersion struct {
	Version string
}

func (fv *FakeVersion) String() string { return fv.Version }

func (fv *FakeVersion) Compare(other string) (int, error) {
	return strings.Compare(fv.Version, other), nil
}
