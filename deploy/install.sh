#!/bin/sh
# Install socksd as a systemd service on Debian (idempotent), or remove it.
#
#   deploy/install.sh [--binary PATH] [--prefix /usr/local] [--destdir DIR]
#   deploy/install.sh --uninstall [--purge] [--prefix ...] [--destdir DIR]
#
# Without --binary the binary is built from this checkout (go build
# ./cmd/socksd). --destdir installs into a staging tree (packaging, tests)
# and never touches systemctl. Running it twice changes nothing the second
# time; an existing /etc/socksd/socksd.toml is never overwritten (the
# shipped one is put next to it as socksd.toml.dist when they differ).
# --uninstall keeps the config and state; --purge removes them too.
set -eu

prefix=/usr/local
destdir=
binary=
uninstall=0
purge=0

usage() {
	sed -n '2,13s/^# \{0,1\}//p' "$0"
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--binary) binary=$2; shift 2 ;;
	--prefix) prefix=$2; shift 2 ;;
	--destdir) destdir=$2; shift 2 ;;
	--uninstall) uninstall=1; shift ;;
	--purge) uninstall=1; purge=1; shift ;;
	-h|--help) usage 0 ;;
	*) echo "install.sh: unknown argument $1" >&2; usage 2 >&2 ;;
	esac
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

bindir=$destdir$prefix/bin
docdir=$destdir$prefix/share/doc/socksd
mandir=$destdir$prefix/share/man/man8
unitdir=$destdir/etc/systemd/system
confdir=$destdir/etc/socksd
tordir=$destdir/etc/tor/torrc.d
units="socksd.service socksd.socket socksd-dns.socket"

# systemctl only when installing into the running system under systemd.
have_systemd() {
	[ -z "$destdir" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

say() { echo "socksd: $*"; }

# put SRC DST MODE: install only when the content or mode differs, so a
# second run reports nothing and leaves timestamps alone.
put() {
	if [ -f "$2" ] && cmp -s "$1" "$2" && [ "$(stat -c %a "$2")" = "$3" ]; then
		return 0
	fi
	install -D -m "$3" "$1" "$2"
	say "installed $2"
	changed=1
}

changed=0

if [ "$uninstall" = 1 ]; then
	if have_systemd; then
		for u in $units; do
			systemctl disable --now "$u" >/dev/null 2>&1 || true
		done
	fi
	fragment=0
	[ -e "$tordir/socksd.conf" ] && fragment=1
	for f in "$bindir/socksd" "$tordir/socksd.conf" "$docdir/README.md" "$mandir/socksd.8" \
		"$docdir/config.example.toml" "$docdir/torrc.socksd" "$confdir/socksd.toml.dist"; do
		if [ -e "$f" ]; then rm -f "$f"; say "removed $f"; fi
	done
	# A reload (not a restart: circuits survive) makes tor drop the
	# fragment's settings and close socksd's SocksPort, so the socket
	# /run/tor/socksd.socks goes away with the rest.
	if [ "$fragment" = 1 ] && have_systemd && systemctl is-active --quiet tor@default.service; then
		if systemctl reload tor@default.service; then
			say "reloaded tor@default without the fragment"
		else
			say "WARNING: tor did not reload; it drops socksd's SocksPort at its next restart"
		fi
	fi
	for u in $units; do
		if [ -e "$unitdir/$u" ]; then rm -f "$unitdir/$u"; say "removed $unitdir/$u"; fi
	done
	rmdir "$docdir" 2>/dev/null || true
	if [ "$purge" = 1 ]; then
		# DynamicUser keeps state under /var/lib/private/socksd.
		for d in "$confdir" "$destdir/var/lib/socksd" "$destdir/var/lib/private/socksd"; do
			if [ -e "$d" ] || [ -L "$d" ]; then rm -rf "$d"; say "purged $d"; fi
		done
	elif [ -e "$confdir/socksd.toml" ]; then
		say "kept $confdir/socksd.toml (use --purge to remove it)"
	fi
	if have_systemd; then systemctl daemon-reload; fi
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -z "$binary" ]; then
	say "building socksd from $repo"
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$tmp/socksd" ./cmd/socksd)
	binary=$tmp/socksd
fi
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable" >&2; exit 1; }

put "$binary" "$bindir/socksd" 755

# The units name /usr/local/bin/socksd; follow --prefix.
for u in $units; do
	sed "s|/usr/local/|$prefix/|g" "$here/$u" >"$tmp/$u"
	put "$tmp/$u" "$unitdir/$u" 644
done

put "$here/README.md" "$docdir/README.md" 644
put "$repo/config.example.toml" "$docdir/config.example.toml" 644
put "$here/torrc.socksd" "$docdir/torrc.socksd" 644
put "$here/socksd.8" "$mandir/socksd.8" 644

if [ -e "$confdir/socksd.toml" ]; then
	if ! cmp -s "$here/socksd.toml" "$confdir/socksd.toml"; then
		put "$here/socksd.toml" "$confdir/socksd.toml.dist" 644
	fi
else
	put "$here/socksd.toml" "$confdir/socksd.toml" 644
fi

# The torrc fragment goes where tor can include it; tor itself is not
# restarted here (that would cut every other tor user's circuits).
put "$here/torrc.socksd" "$tordir/socksd.conf" 644
torrc=$destdir/etc/tor/torrc
if [ -e "$torrc" ] && ! grep -Eq '^[[:space:]]*%include[[:space:]]+/etc/tor/torrc\.d' "$torrc"; then
	say "NOTE: $torrc does not include /etc/tor/torrc.d; add this line at its end:"
	say "      %include /etc/tor/torrc.d/*.conf"
fi

if ! getent group debian-tor >/dev/null 2>&1; then
	say "WARNING: group debian-tor does not exist (apt-get install tor); the unit's SupplementaryGroups= will fail"
fi

if have_systemd; then
	[ "$changed" = 1 ] && systemctl daemon-reload
	if systemctl is-active --quiet socksd.service && [ "$changed" = 1 ]; then
		systemctl restart socksd.service
		say "restarted socksd.service"
	fi
fi

if [ "$changed" = 0 ]; then
	say "already up to date"
else
	say "next: systemctl reload tor && systemctl enable --now socksd.service"
	say "check: systemctl status socksd; curl -x socks5h://127.0.0.1:9350 https://check.torproject.org/api/ip"
fi
