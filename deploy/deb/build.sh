#!/bin/sh
# Build socksd's Debian package with dpkg-deb (make deb).
#
#   deploy/deb/build.sh [--binary PATH] [--version V] [--out DIR] [--compress xz|gzip|none]
#
# The tree is laid out by deploy/install.sh (--destdir, --prefix /usr), so
# the package and a source install hold the same files; the units then
# move to /lib/systemd/system, where packaged units live. Conffiles:
# /etc/socksd/socksd.toml and /etc/tor/torrc.d/socksd.conf. Without
# --binary, socksd is built from this checkout (static, -trimpath). The
# version defaults to 0.0~git<date>.<commit>; the package is written to
# --out (default dist/) as socksd_<version>_<arch>.deb and its path
# printed. --compress picks dpkg-deb's compressor (default xz, Debian's;
# the systemd test uses none: xz takes a minute on a busy machine).
#
# Why dpkg-deb and not a packager such as nfpm: dpkg-deb is on every
# Debian machine (it is how dpkg itself unpacks), the package is a
# handful of files and four short maintainer scripts, and a Go packager
# would add a module tree to go.mod for what one command does.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
deploy=$(dirname "$here")
repo=$(dirname "$deploy")
binary=
version=
out=$repo/dist
compress=xz

while [ $# -gt 0 ]; do
	case "$1" in
	--binary) binary=$2; shift 2 ;;
	--version) version=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--compress) compress=$2; shift 2 ;;
	-h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

if [ -z "$version" ]; then
	rev=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	date=$(git -C "$repo" log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date -u +%Y%m%d)
	version=0.0~git$date.$rev
fi
case "$version" in
[0-9]*) ;;
*) echo "build.sh: a Debian version starts with a digit: $version" >&2; exit 2 ;;
esac
arch=$(dpkg --print-architecture)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root

if [ -z "$binary" ]; then
	(cd "$repo" && CGO_ENABLED=0 GOARCH=$arch go build -trimpath \
		-ldflags "-s -w -X main.version=$version" -o "$tmp/socksd" ./cmd/socksd)
	binary=$tmp/socksd
fi

"$deploy/install.sh" --destdir "$root" --prefix /usr --binary "$binary" >/dev/null
mkdir -p "$root/lib/systemd/system"
mv "$root"/etc/systemd/system/* "$root/lib/systemd/system/"
rmdir "$root/etc/systemd/system" "$root/etc/systemd"

doc=$root/usr/share/doc/socksd
gzip -9n "$root/usr/share/man/man8/socksd.8"
cp "$here/copyright" "$doc/copyright"
{
	echo "socksd ($version) unstable; urgency=medium"
	echo
	echo "  * Built from the socksd repository (deploy/deb/build.sh)."
	echo
	echo " -- socksd developers <socksd@localhost>  $(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")"
} | gzip -9n >"$doc/changelog.Debian.gz"

mkdir -p "$root/DEBIAN"
for s in postinst prerm postrm; do
	install -m 755 "$here/$s" "$root/DEBIAN/$s"
done
printf '/etc/socksd/socksd.toml\n/etc/tor/torrc.d/socksd.conf\n' >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: socksd
Version: $version
Architecture: $arch
Maintainer: socksd developers <socksd@localhost>
Installed-Size: $size
Depends: tor
Section: net
Priority: optional
Description: Tor SOCKS front end with stream isolation
 socksd accepts SOCKS4/4a/5 and HTTP CONNECT clients and forwards every
 stream to the system tor, isolating streams by client, username and
 application on circuits of their own. It never resolves names locally
 and never connects to a destination itself: without a usable Tor it
 fails closed. It runs as a hardened systemd service (socksd.service,
 a transient user, loopback-only network) with optional socket
 activation of its SOCKS port and of a DNS bridge on port 53.
CONTROL

mkdir -p "$out"
deb=$out/socksd_${version}_$arch.deb
dpkg-deb --root-owner-group "-Z$compress" --build "$root" "$deb" >/dev/null
echo "$deb"
