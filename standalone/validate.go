package standalone

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The names of a manifest become paths (the volume root's <uid>/volumes/<volume>, the log dir
// <namespace>_<name>_<uid>, the record <namespace>_<name>.json), labels and CNI_ARGS: they are
// validated as the API server does before anything touches the disk, by `pods apply` and the
// manager's scan alike (both convert through Convert).

// maxUIDLength bounds metadata.uid (a UUID has 36 characters).
const maxUIDLength = 128

// uidPattern is what a manifest's metadata.uid may be: letters, digits, '-', '_' and '.',
// starting and ending with a letter or digit (so never "." or ".."), no '/' nor the ';' and '='
// of CNI_ARGS. The API server makes UIDs itself (UUIDs); static pods may set one.
var uidPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

func validateUID(uid string) error {
	if len(uid) > maxUIDLength {
		return fmt.Errorf("longer than %d characters", maxUIDLength)
	}
	if !uidPattern.MatchString(uid) {
		return fmt.Errorf("%q: only letters, digits, '-', '_' and '.', starting and ending with a letter or digit", uid)
	}
	return nil
}

// dnsErr joins the messages of the apimachinery validation functions.
func dnsErr(v string, msgs []string) error {
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("%q: %s", v, strings.Join(msgs, "; "))
}

// validateMeta checks the pod's name (a DNS-1123 subdomain), namespace (a DNS-1123 label), UID
// (uidPattern) and labels and annotations (qualified names, label values).
func validateMeta(pod *corev1.Pod) error {
	if pod.Name == "" {
		return errors.New("metadata.name: required")
	}
	if err := dnsErr(pod.Name, validation.IsDNS1123Subdomain(pod.Name)); err != nil {
		return fmt.Errorf("metadata.name: %w", err)
	}
	if err := dnsErr(pod.Namespace, validation.IsDNS1123Label(pod.Namespace)); err != nil {
		return fmt.Errorf("metadata.namespace: %w", err)
	}
	if pod.UID != "" {
		if err := validateUID(string(pod.UID)); err != nil {
			return fmt.Errorf("metadata.uid: %w", err)
		}
	}
	for k, v := range pod.Labels {
		if err := dnsErr(k, validation.IsQualifiedName(k)); err != nil {
			return fmt.Errorf("metadata.labels: %w", err)
		}
		if err := dnsErr(v, validation.IsValidLabelValue(v)); err != nil {
			return fmt.Errorf("metadata.labels[%s]: %w", k, err)
		}
	}
	for k := range pod.Annotations {
		if err := dnsErr(k, validation.IsQualifiedName(strings.ToLower(k))); err != nil {
			return fmt.Errorf("metadata.annotations: %w", err)
		}
	}
	return nil
}

// validateVolumes checks the volume names (DNS-1123 labels, unique) and hostPath paths
// (absolute, no "..").
func validateVolumes(vols []corev1.Volume) error {
	seen := map[string]bool{}
	for _, v := range vols {
		if v.Name == "" {
			return errors.New("volume: name is required")
		}
		if err := dnsErr(v.Name, validation.IsDNS1123Label(v.Name)); err != nil {
			return fmt.Errorf("volume name: %w", err)
		}
		if seen[v.Name] {
			return fmt.Errorf("volume %q: duplicate name", v.Name)
		}
		seen[v.Name] = true
		if v.HostPath != nil {
			if !filepath.IsAbs(v.HostPath.Path) {
				return fmt.Errorf("volume %q: hostPath.path must be absolute", v.Name)
			}
			if hasBackstep(v.HostPath.Path) {
				return fmt.Errorf("volume %q: hostPath.path must not contain '..'", v.Name)
			}
		}
	}
	return nil
}

// validateSubPath is the API server's check of a volumeMount's subPath: a relative path with no
// ".." element. It is resolved inside the volume at each start (subpath.go).
func validateSubPath(p string) error {
	if filepath.IsAbs(p) {
		return errors.New("must be a relative path")
	}
	if hasBackstep(p) {
		return errors.New("must not contain '..'")
	}
	if strings.ContainsRune(p, 0) {
		return errors.New("must not contain NUL")
	}
	return nil
}

func hasBackstep(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return true
		}
	}
	return false
}
