package testregistry

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one member of a layer tarball. Directories end in "/" in name.
type entry struct {
	name     string // relative path, no leading "/"
	mode     int64  // permission bits plus setuid/setgid/sticky
	data     []byte // regular files
	linkname string // symlinks
	hardlink string // hard links: the archive path of the target
	uid, gid int
}

func dir(name string, mode int64) entry {
	return entry{name: strings.TrimSuffix(name, "/") + "/", mode: mode}
}
func file(name string, mode int64, data []byte) entry {
	return entry{name: name, mode: mode, data: data}
}
func hardlink(name, target string) entry { return entry{name: name, mode: 0o755, hardlink: target} }

// layerBuilder collects entries and writes them as a reproducible tar: fixed timestamps, root
// ownership unless set, and the order of insertion (parents must come first).
type layerBuilder struct {
	entries []entry
	seen    map[string]bool
}

func (b *layerBuilder) add(es ...entry) *layerBuilder {
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	for _, e := range es {
		key := strings.TrimSuffix(e.name, "/")
		if b.seen[key] {
			continue
		}
		b.seen[key] = true
		b.entries = append(b.entries, e)
	}
	return b
}

// tar returns the uncompressed layer tarball.
func (b *layerBuilder) tar() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range b.entries {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: created,
			Format:  tar.FormatPAX,
		}
		switch {
		case strings.HasSuffix(e.name, "/"):
			hdr.Typeflag = tar.TypeDir
		case e.hardlink != "":
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = e.hardlink
		case e.linkname != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.linkname
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// layer returns the entries as a gzip-compressed OCI layer.
func (b *layerBuilder) layer() (v1.Layer, error) {
	raw, err := b.tar()
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	data := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// withParents adds the directories leading to name (mode 0755) when not already present.
func (b *layerBuilder) withParents(name string) *layerBuilder {
	d := path.Dir(strings.TrimSuffix(name, "/"))
	if d == "." || d == "/" || d == "" {
		return b
	}
	b.withParents(d)
	return b.add(dir(d, 0o755))
}

// addFile adds a regular file and its missing parent directories.
func (b *layerBuilder) addFile(name string, mode int64, data []byte) *layerBuilder {
	b.withParents(name)
	return b.add(file(name, mode, data))
}

// Contents shared by every busybox-based image.

const (
	// defaultPath is the PATH every image carries in its environment.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

	// passwd and group are those of the busybox image (root, nobody, www-data, ...).
	passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	group = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
staff:x:50:
users:x:100:
nogroup:x:65534:
`
	nsswitch = `passwd: files
group: files
shadow: files
hosts: files dns
networks: files
services: files
protocols: files
`

	// pgrepScript stands in for procps' pgrep, which busybox (as Debian builds it) lacks.
	pgrepScript = `#!/bin/sh
# pgrep stand-in for the cri-shim conformance images: pgrep [-f] [-l] [-x] PATTERN
full=0 list=0 exact=0
while [ $# -gt 0 ]; do
	case "$1" in
	--) shift; break ;;
	-*)
		opts=${1#-}
		while [ -n "$opts" ]; do
			case "$opts" in
			f*) full=1 ;;
			l*) list=1 ;;
			x*) exact=1 ;;
			esac
			opts=${opts#?}
		done ;;
	*) break ;;
	esac
	shift
done
if [ $# -ne 1 ]; then
	echo "usage: pgrep [-flx] PATTERN" >&2
	exit 2
fi
pat=$1
[ $exact = 1 ] && pat="^($pat)\$"
rc=1
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	[ "$pid" = "$$" ] && continue
	name=
	read -r name 2>/dev/null < "$d/comm" || continue
	if [ $full = 1 ]; then
		s=$(tr '\000' ' ' 2>/dev/null < "$d/cmdline")
		s=${s% }
		[ -n "$s" ] || s=$name
	else
		s=$name
	fi
	[ "$name" = pgrep ] && continue
	if printf '%s\n' "$s" | grep -q -E -e "$pat"; then
		rc=0
		if [ $list = 1 ]; then echo "$pid $s"; else echo "$pid"; fi
	fi
done
exit $rc
`

	// ipcsScript stands in for util-linux's ipcs, reading /proc/sysvipc. Its headers carry no
	// digits, so a segment id never matches them by accident.
	ipcsScript = `#!/bin/sh
# ipcs stand-in for the cri-shim conformance images: ipcs [-m] [-q] [-s] [-a]
m=0 q=0 s=0
for a in "$@"; do
	case "$a" in
	-m|--shmems) m=1 ;;
	-q|--queues) q=1 ;;
	-s|--semaphores) s=1 ;;
	-a|--all) m=1 q=1 s=1 ;;
	esac
done
[ $m$q$s = 000 ] && m=1 q=1 s=1
if [ $m = 1 ]; then
	echo
	echo "------ Shared Memory Segments --------"
	echo "key        shmid      owner      perms      bytes      nattch     status"
	if [ -r /proc/sysvipc/shm ]; then
		while read -r key id perms size cpid lpid nattch uid rest; do
			[ "$key" = key ] && continue
			key=$((key & 0xffffffff))
			printf '0x%08x %-10s %-10s %-10s %-10s %-10s\n' "$key" "$id" "$uid" "$perms" "$size" "$nattch"
		done < /proc/sysvipc/shm
	fi
fi
if [ $q = 1 ]; then
	echo
	echo "------ Message Queues --------"
	echo "key        msqid      owner      perms      used-bytes   messages"
	if [ -r /proc/sysvipc/msg ]; then
		while read -r key id perms cbytes qnum lspid lrpid uid rest; do
			[ "$key" = key ] && continue
			key=$((key & 0xffffffff))
			printf '0x%08x %-10s %-10s %-10s %-12s %-10s\n' "$key" "$id" "$uid" "$perms" "$cbytes" "$qnum"
		done < /proc/sysvipc/msg
	fi
fi
if [ $s = 1 ]; then
	echo
	echo "------ Semaphore Arrays --------"
	echo "key        semid      owner      perms      nsems"
	if [ -r /proc/sysvipc/sem ]; then
		while read -r key id perms nsems uid rest; do
			[ "$key" = key ] && continue
			key=$((key & 0xffffffff))
			printf '0x%08x %-10s %-10s %-10s %-10s\n' "$key" "$id" "$uid" "$perms" "$nsems"
		done < /proc/sysvipc/sem
	fi
fi
echo
`

	// httpdForeground runs busybox httpd behind a shell that stays PID 1 and stops it on the
	// image's StopSignal (SIGWINCH, apache's graceful stop) as well as on SIGTERM/SIGINT.
	httpdForeground = `#!/bin/sh
# httpd-foreground for the cri-shim conformance images: busybox httpd as apache's stand-in.
cd /usr/local/apache2 || exit 1
echo "httpd: Apache/2.4.39 (busybox httpd stand-in) listening on port 80, serving /usr/local/apache2/htdocs" >&2
httpd -f -p 80 -h /usr/local/apache2/htdocs &
child=$!
stop() {
	echo "httpd: caught $1, shutting down" >&2
	kill -TERM "$child" 2>/dev/null
	wait "$child"
	exit 0
}
trap 'stop SIGWINCH' WINCH
trap 'stop SIGTERM' TERM
trap 'stop SIGINT' INT
trap 'stop SIGQUIT' QUIT
wait "$child"
`
)

// busyboxFiles returns the file system shared by the busybox-based images: the busybox binary
// at /bin/busybox with every applet linked next to it, the pgrep/ipcs stand-ins, /etc files and
// the usual directories. Applets are hard links, as in the busybox image: masking one of them
// (MaskedPaths bind-mounts /dev/null over the path) must not mask busybox itself, which it would
// through a symlink. extra is added after /bin/busybox (shared libraries, for a dynamic one).
func busyboxFiles(busyboxPath string, extra func(*layerBuilder) error) (*layerBuilder, error) {
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading busybox: %w", err)
	}
	applets, err := busyboxApplets(busyboxPath)
	if err != nil {
		return nil, err
	}
	b := &layerBuilder{}
	b.add(
		dir("bin", 0o755),
		dir("dev", 0o755),
		dir("etc", 0o755),
		dir("home", 0o755),
		dir("lib", 0o755),
		dir("proc", 0o555),
		dir("root", 0o700),
		dir("sys", 0o555),
		dir("tmp", 0o1777),
		dir("usr", 0o755),
		dir("usr/bin", 0o755),
		dir("usr/local", 0o755),
		dir("usr/local/bin", 0o755),
		dir("usr/local/sbin", 0o755),
		dir("usr/sbin", 0o755),
		dir("var", 0o755),
		dir("var/run", 0o755),
		dir("var/spool", 0o755),
		dir("var/spool/mail", 0o755),
		dir("var/www", 0o755),
		file("bin/busybox", 0o755, bin),
	)
	if extra != nil {
		if err := extra(b); err != nil {
			return nil, err
		}
	}
	for _, a := range applets {
		b.add(hardlink("bin/"+a, "bin/busybox"))
	}
	b.add(
		file("bin/pgrep", 0o755, []byte(pgrepScript)),
		file("bin/ipcs", 0o755, []byte(ipcsScript)),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
		file("etc/shadow", 0o640, []byte(shadowFor(passwd))),
		file("etc/nsswitch.conf", 0o644, []byte(nsswitch)),
	)
	return b, nil
}

// shadowFor returns a shadow file locking every account of the passwd content.
func shadowFor(passwdContent string) string {
	var sb strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(passwdContent), "\n") {
		name, _, _ := strings.Cut(l, ":")
		fmt.Fprintf(&sb, "%s:*:10933:0:99999:7:::\n", name)
	}
	return sb.String()
}

// busyboxApplets lists the applets of a busybox binary (running it on the host).
func busyboxApplets(busyboxPath string) ([]string, error) {
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busyboxPath, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			applets = append(applets, a)
		}
	}
	sort.Strings(applets)
	return applets, nil
}

// sharedLibraries returns the ELF loader and shared libraries a dynamic binary needs, by the
// paths ldd reports (which are where the loader looks for them in the image too).
func sharedLibraries(binary string) ([]string, error) {
	out, err := exec.Command("ldd", binary).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", binary, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	if len(libs) == 0 {
		return nil, fmt.Errorf("ldd %s: no libraries found (is it static?)", binary)
	}
	sort.Strings(libs)
	return libs, nil
}

// addSharedLibraries copies the libraries (symlinks resolved) into the layer at their paths.
func addSharedLibraries(b *layerBuilder, libs []string) error {
	for _, l := range libs {
		data, err := os.ReadFile(l)
		if err != nil {
			return err
		}
		b.addFile(strings.TrimPrefix(path.Clean(l), "/"), 0o755, data)
	}
	return nil
}
