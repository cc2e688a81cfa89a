#!/usr/bin/env bash
# Builds the test-node guest: a Debian bookworm root file system booting systemd as PID 1 on a
# cgroup v2 only kernel command line, with containerd as its own systemd service, cri-shim started
# by systemd, the test images and the in-guest test runner. Output in $GUEST (default
# /var/cache/cri-shim/guest):
#   vmlinuz, initrd.img   the guest kernel (Debian's linux-image-cloud-amd64) and its initramfs
#   root.img              raw ext4 image of the root file system (run.sh boots it read-only
#                         underneath a throwaway QEMU snapshot, so it stays reusable)
#   image.key             hash of every input of root.img: an unchanged key means no rebuild
# Stages, each cached under $GUEST and redone only when its inputs change:
#   1. host tools (qemu-system-x86, debootstrap, e2fsprogs, busybox-static) installed when missing
#   2. base-<key>/: debootstrap of $SUITE with $PACKAGES (key: suite, mirror, packages)
#   3. bin/: ctr (containerd's client, to import the test images), the pause program; install/:
#      cri-shim as `make install DESTDIR=install` writes it (binary, unit, default config)
#   4. images/: docker-archive tarballs of a static busybox image and a pause image
#   4b. critest/: what the critest test needs (critest, ginkgo, the test registry, the images'
#      programs prebuilt, the busybox binaries the registry builds its images from)
#   5. root.img: base + binaries + install/ + hack/guest/files + hack/guest/in-guest + images, and
#      the kubelet when hack/kubelet/build.sh has built it (the kubelet test needs it; smoke does not)
# Needs root (debootstrap, device nodes). Network: deb.debian.org for apt and debootstrap, the Go
# module proxy for ctr; the guest itself has no network device.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/hack/guest
CACHE=${CRI_SHIM_CACHE:-/var/cache/cri-shim}
BIN=$CACHE/bin
KUBELET=$CACHE/kubelet-${KUBELET_VERSION:-v1.37.2}/kubelet
GUEST=${CRI_SHIM_GUEST_DIR:-$CACHE/guest}
SUITE=${GUEST_SUITE:-bookworm}
MIRROR=${GUEST_MIRROR:-http://deb.debian.org/debian}
IMAGE_SIZE=${GUEST_IMAGE_SIZE:-4G}
# dbus: runc's and the kubelet's systemd cgroup driver talk to systemd over it.
PACKAGES=(systemd-sysv udev dbus kmod linux-image-cloud-amd64 iptables iproute2
  containernetworking-plugins ca-certificates jq procps)
export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--buildvcs=false}

log() { echo "guest-build: $*" >&2; }
start=$(date +%s)
mkdir -p "$GUEST"

# --- 1. host tools -------------------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" || missing+=(busybox-static)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for b in containerd containerd-shim-runc-v2 runc crictl; do
  [ -x "$BIN/$b" ] || { log "$BIN/$b missing: run hack/setup.sh (make setup)"; exit 1; }
done

# --- 2. the Debian base --------------------------------------------------------------------------
base_key=$(printf '%s\n' "$SUITE" "$MIRROR" "${PACKAGES[@]}" | sha256sum | cut -c1-16)
BASE=$GUEST/base-$base_key
if [ ! -f "$BASE/.complete" ]; then
  log "debootstrap $SUITE into $BASE (a few minutes)"
  rm -rf "$BASE.tmp"
  inc=$(IFS=,; echo "${PACKAGES[*]}")
  debootstrap --variant=minbase --include="$inc" "$SUITE" "$BASE.tmp" "$MIRROR" >"$GUEST/debootstrap.log" 2>&1 ||
    { log "debootstrap failed:"; tail -30 "$GUEST/debootstrap.log" >&2; exit 1; }
  chroot "$BASE.tmp" apt-get clean
  touch "$BASE.tmp/.complete"
  mv "$BASE.tmp" "$BASE"
  for d in "$GUEST"/base-*; do [ "$d" = "$BASE" ] || rm -rf "$d"; done
fi

# --- 3. binaries ---------------------------------------------------------------------------------
mkdir -p "$GUEST/bin"
CONTAINERD_VERSION=$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
if [ ! -x "$GUEST/bin/ctr" ] || [ ! -f "$GUEST/bin/.ctr-$CONTAINERD_VERSION" ]; then
  log "building ctr $CONTAINERD_VERSION"
  GOBIN=$GUEST/bin CGO_ENABLED=0 go install "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  rm -f "$GUEST"/bin/.ctr-*
  touch "$GUEST/bin/.ctr-$CONTAINERD_VERSION"
fi
log "make install DESTDIR=$GUEST/install, building pause"
# The guest runs cri-shim as a node would after `make install`: its unit in
# /usr/local/lib/systemd/system, its default config in /etc/cri-shim (containerd_mode external).
rm -rf "$GUEST/install"
make -s -C "$ROOT" install DESTDIR="$GUEST/install" PREFIX=/usr/local SYSCONFDIR=/etc >&2
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -buildid=' -o "$GUEST/bin/pause" ./test/critest/testregistry/programs/pause)

# --- 4. test images ------------------------------------------------------------------------------
# mkimage REF DIR OUT CMD-JSON: a one-layer docker-archive tarball (what `ctr images import` reads)
# of DIR, with fixed timestamps and owners so an unchanged input gives an unchanged file.
mkimage() {
  local ref=$1 dir=$2 out=$3 cmd=$4 tmp diff cfg
  tmp=$(mktemp -d)
  tar --sort=name --mtime=@1704067200 --owner=0 --group=0 --numeric-owner --format=gnu -C "$dir" -cf "$tmp/layer.tar" .
  diff=sha256:$(sha256sum <"$tmp/layer.tar" | cut -d' ' -f1)
  printf '{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$cmd" "$diff" >"$tmp/config.json"
  cfg=$(sha256sum <"$tmp/config.json" | cut -d' ' -f1).json
  mv "$tmp/config.json" "$tmp/$cfg"
  printf '[{"Config":"%s","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$cfg" "$ref" >"$tmp/manifest.json"
  tar --mtime=@1704067200 --owner=0 --group=0 --numeric-owner --format=gnu -C "$tmp" -cf "$out" manifest.json "$cfg" layer.tar
  rm -rf "$tmp"
}
IMAGES=$GUEST/images
rm -rf "$IMAGES" && mkdir -p "$IMAGES"
fs=$(mktemp -d)
trap 'rm -rf "$fs"' EXIT
# busybox (static): every applet a symlink, root and nobody users.
mkdir -p "$fs/bb/bin" "$fs/bb/etc" "$fs/bb/tmp" "$fs/bb/proc" "$fs/bb/sys" "$fs/bb/dev"
chmod 1777 "$fs/bb/tmp"
install -m 0755 /bin/busybox "$fs/bb/bin/busybox"
for a in $(/bin/busybox --list-full); do
  [ "$a" = bin/busybox ] && continue
  mkdir -p "$fs/bb/$(dirname "$a")"
  ln -sf /bin/busybox "$fs/bb/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$fs/bb/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$fs/bb/etc/group"
mkimage docker.io/library/busybox:guest "$fs/bb" "$IMAGES/busybox.tar" '["sh"]'
# pause: cri-shim's default sandbox image name.
mkdir -p "$fs/pause"
install -m 0755 "$GUEST/bin/pause" "$fs/pause/pause"
mkimage registry.k8s.io/pause:3.10 "$fs/pause" "$IMAGES/pause.tar" '["/pause"]'

# --- 4b. critest -------------------------------------------------------------------------------
# GUEST_TEST=critest: critest and ginkgo from hack/setup.sh, the test registry with its programs
# prebuilt here (the guest has no Go), the busybox binaries its images are made of.
CRITEST=$GUEST/critest
rm -rf "$CRITEST" && mkdir -p "$CRITEST/programs" "$CRITEST/busybox-dyn/bin"
for b in critest ginkgo; do
  [ -x "$BIN/$b" ] || { log "$BIN/$b missing: run hack/setup.sh (make setup)"; exit 1; }
  install -m 0755 "$BIN/$b" "$CRITEST/"
done
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w -buildid=' -o "$CRITEST/testregistry" ./test/critest/testregistry/cmd/testregistry)
(cd "$ROOT" && CGO_ENABLED=0 GOAMD64=v1 go build -trimpath -ldflags='-s -w -buildid=' -o "$CRITEST/programs/" ./test/critest/testregistry/programs/...)
install -m 0755 /bin/busybox "$CRITEST/busybox"
install -m 0755 "$CACHE/busybox-dyn/bin/busybox" "$CRITEST/busybox-dyn/bin/busybox"

# --- 5. root.img ---------------------------------------------------------------------------------
inputs() {
  echo "base $base_key size $IMAGE_SIZE"
  (cd "$BIN" && sha256sum containerd containerd-shim-runc-v2 runc crictl)
  (cd "$GUEST" && sha256sum bin/ctr images/*.tar)
  (cd "$GUEST" && find critest -type f -print0 | sort -z | xargs -0 sha256sum)
  if [ -x "$KUBELET" ]; then sha256sum "$KUBELET"; fi
  (cd "$GUEST/install" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
  (cd "$HERE" && find files in-guest -type f -print0 | sort -z | xargs -0 sha256sum)
  (cd "$HERE" && find files in-guest -type f -printf '%p %m\n' | sort)
}
key=$(inputs | sha256sum | cut -c1-16)
if [ -f "$GUEST/root.img" ] && [ "$(cat "$GUEST/image.key" 2>/dev/null)" = "$key" ]; then
  log "root.img is up to date (key $key)"
else
  log "assembling root.img (key $key)"
  STAGE=$GUEST/stage
  rm -rf "$STAGE"
  # BASE's contents, not BASE itself: BASE may be a symlink to a shared base (a second guest dir
  # reusing one debootstrap), which cp -a would copy as a link, then stage into the shared base.
  mkdir -p "$STAGE"
  cp -a --reflink=auto "$BASE/." "$STAGE/"
  rm -f "$STAGE/.complete"
  install -m 0755 "$BIN/containerd" "$BIN/containerd-shim-runc-v2" "$BIN/runc" "$BIN/crictl" \
    "$GUEST/bin/ctr" "$STAGE/usr/local/bin/"
  cp -a "$GUEST/install/." "$STAGE/"
  if [ -x "$KUBELET" ]; then install -m 0755 "$KUBELET" "$STAGE/usr/local/bin/kubelet"; else log "no $KUBELET (hack/kubelet/build.sh): the guest has no kubelet"; fi
  # Config files and units, with their modes.
  (cd "$HERE/files" && find . -type f) | while read -r f; do
    install -D -m "$(stat -c %a "$HERE/files/$f")" "$HERE/files/$f" "$STAGE/${f#./}"
  done
  mkdir -p "$STAGE/usr/local/lib/cri-shim-guest/images"
  install -m 0755 "$HERE"/in-guest/*.sh "$STAGE/usr/local/lib/cri-shim-guest/"
  install -m 0644 "$IMAGES"/*.tar "$STAGE/usr/local/lib/cri-shim-guest/images/"
  cp -a "$CRITEST" "$STAGE/usr/local/lib/cri-shim-guest/critest"
  # A fixed machine id: no first-boot setup. systemd's own links enable the units.
  echo 0123456789abcdef0123456789abcdef >"$STAGE/etc/machine-id"
  echo crishim-guest >"$STAGE/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 crishim-guest\n' >"$STAGE/etc/hosts"
  mkdir -p "$STAGE/etc/systemd/system/multi-user.target.wants"
  for u in containerd.service guest-images.service guest-test.service; do
    ln -sf "/etc/systemd/system/$u" "$STAGE/etc/systemd/system/multi-user.target.wants/$u"
  done
  ln -sf /usr/local/lib/systemd/system/cri-shim.service "$STAGE/etc/systemd/system/multi-user.target.wants/cri-shim.service"
  cp "$STAGE"/boot/vmlinuz-* "$GUEST/vmlinuz"
  cp "$STAGE"/boot/initrd.img-* "$GUEST/initrd.img"
  rm -f "$GUEST/root.img"
  truncate -s "$IMAGE_SIZE" "$GUEST/root.img.tmp"
  mkfs.ext4 -q -F -L crishim-guest -d "$STAGE" "$GUEST/root.img.tmp"
  mv "$GUEST/root.img.tmp" "$GUEST/root.img"
  echo "$key" >"$GUEST/image.key"
  rm -rf "$STAGE"
fi
echo "$(( $(date +%s) - start ))" >"$GUEST/last-build-seconds"
log "ready in $(( $(date +%s) - start ))s: $GUEST/{vmlinuz,initrd.img,root.img}"
