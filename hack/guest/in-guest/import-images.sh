#!/bin/sh
# Imports the images shipped under /usr/local/lib/cri-shim-guest/images (docker-archive tarballs
# made by hack/guest/build.sh) into containerd's cri-shim namespace, unpacked.
set -eu
for t in /usr/local/lib/cri-shim-guest/images/*.tar; do
  /usr/local/bin/ctr -n cri-shim images import "$t"
done
