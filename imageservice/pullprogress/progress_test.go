package pullprogress

import "testing"

// IsLayer agrees with the media types containerd's images.IsLayerType knows.
func TestIsLayer(t *testing.T) {
	for mt, want := range map[string]bool{
		"application/vnd.oci.image.layer.v1.tar":                       true,
		"application/vnd.oci.image.layer.v1.tar+gzip":                  true,
		"application/vnd.oci.image.layer.v1.tar+zstd":                  true,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
		"application/vnd.docker.image.rootfs.diff.tar.gzip":            true,
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    true,
		"application/vnd.docker.image.rootfs.diff.tar.zstd":            true,
		"application/vnd.oci.image.manifest.v1+json":                   false,
		"application/vnd.oci.image.index.v1+json":                      false,
		"application/vnd.oci.image.config.v1+json":                     false,
		"application/vnd.docker.container.image.v1+json":               false,
		"application/vnd.docker.distribution.manifest.v2+json":         false,
	} {
		if got := (BlobProgress{MediaType: mt}).IsLayer(); got != want {
			t.Errorf("IsLayer(%s) = %v, want %v", mt, got, want)
		}
	}
}
