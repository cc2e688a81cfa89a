package imageservice

import (
	"fmt"
	"sort"
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NormalizeRef parses an image reference the way docker and containerd do: "busybox" becomes
// "docker.io/library/busybox:latest", a reference with both a tag and a digest keeps the digest.
// An empty or malformed reference, or a bare image ID, is an InvalidArgument error.
func NormalizeRef(ref string) (reference.Named, error) {
	if strings.TrimSpace(ref) == "" {
		return nil, status.Error(codes.InvalidArgument, "image reference is empty")
	}
	if isImageID(ref) {
		return nil, status.Errorf(codes.InvalidArgument, "%q is an image ID, not a reference to pull", ref)
	}
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid image reference %q: %v", ref, err)
	}
	return named, nil
}

// repoDigestAndTag returns the names a pull by named records besides the image ID: the repo digest
// (repository@manifest-digest) and, when named has a tag, the repo tag.
func repoDigestAndTag(named reference.Named, target digest.Digest) (repoDigest, repoTag string) {
	if _, ok := named.(reference.NamedTagged); ok {
		repoTag = named.String()
	}
	if _, ok := named.(reference.Canonical); ok {
		repoDigest = named.String()
	} else {
		repoDigest = named.Name() + "@" + target.String()
	}
	return repoDigest, repoTag
}

// splitNames sorts an image's record names into repo tags and repo digests; other names (the
// image ID record, names that do not parse) are neither. Both lists are sorted.
func splitNames(names []string) (tags, digests []string) {
	for _, n := range names {
		parsed, err := reference.ParseAnyReference(n)
		if err != nil {
			continue
		}
		switch parsed.(type) {
		case reference.Canonical:
			digests = append(digests, parsed.String())
		case reference.Tagged:
			tags = append(tags, parsed.String())
		}
	}
	sort.Strings(tags)
	sort.Strings(digests)
	return tags, digests
}

// isImageID tells whether s is a full image ID (sha256:<64 hex>).
func isImageID(s string) bool {
	d, err := digest.Parse(s)
	return err == nil && d.Algorithm() == digest.SHA256
}

// idPrefix returns the hex part of a (possibly truncated) image ID given as "sha256:abc..." or
// "abc...", and whether s can be one.
func idPrefix(s string) (string, bool) {
	hex := strings.TrimPrefix(s, "sha256:")
	if len(hex) == 0 || len(hex) > 64 {
		return "", false
	}
	for _, c := range hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	return hex, true
}

// candidateNames returns the record names refOrID can mean, most specific first: itself as an
// image ID, and its normalized reference.
func candidateNames(refOrID string) []string {
	if isImageID(refOrID) {
		return []string{refOrID}
	}
	var out []string
	if hex, ok := idPrefix(refOrID); ok && len(hex) == 64 {
		out = append(out, "sha256:"+hex)
	}
	if named, err := reference.ParseDockerRef(refOrID); err == nil {
		out = append(out, named.String())
	}
	return out
}

// describeRef is for messages: the reference as given, plus its normalized form when it differs.
func describeRef(given string, named reference.Named) string {
	if named == nil || named.String() == given {
		return fmt.Sprintf("%q", given)
	}
	return fmt.Sprintf("%q (%s)", given, named.String())
}
