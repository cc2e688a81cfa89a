package kuberuntime

import (
	"testing"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestImageCache(t *testing.T) {
	var c imageCache // the zero value is ready
	if _, ok := c.image("sha256:a"); ok {
		t.Fatal("empty cache has an image")
	}
	if c.isUnpacked("overlayfs", "sha256:chain") {
		t.Fatal("empty cache has an unpacked chain")
	}
	rec := imageRecord{config: imagespec.ImageConfig{User: "1000"}, chainID: "sha256:chain"}
	c.addImage("sha256:a", rec)
	if got, ok := c.image("sha256:a"); !ok || got.chainID != rec.chainID || got.config.User != "1000" {
		t.Fatalf("image: %+v %v", got, ok)
	}
	c.setUnpacked("overlayfs", "sha256:chain")
	if !c.isUnpacked("overlayfs", "sha256:chain") {
		t.Fatal("chain not unpacked after setUnpacked")
	}
	// Unpacked is per snapshotter.
	if c.isUnpacked("native", "sha256:chain") {
		t.Fatal("chain unpacked for another snapshotter")
	}
}
