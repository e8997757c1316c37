#!/usr/bin/env bash
# socksd benchmark suite (results in docs/performance.md). Usage:
#   bash test/bench/run.sh [quick|full] [socksbench run flags...]
# quick: about a minute, for development; full (default): about 10 minutes,
# 3 alternating repetitions, 2 GiB bulk runs, 8000 idle connections.
# Writes results/bench.md, results/bench.png, results/samples.json and
# results/run.log. Loopback only; every load loop is bounded.
# Then, unless BENCH_TOR=0, the through-Tor phase (socksbench tor): a private
# Tor network on loopback (test/tornet), Tor's SocksPort/DNSPort against
# socksd in its product configuration; it writes results/tor.md and appends
# it to results/bench.md. Extra flags for it: BENCH_TOR_FLAGS.
# BENCH_OUT=DIR writes to DIR instead of results (runs in parallel).
#
#   bash test/bench/run.sh real|lossy [socksbench user flags...]
# only the user-felt comparison (socksbench user): socksd against Tor alone
# on a private network with link latency (that tornet profile); about 7
# minutes, bounded at 15. Writes results/user.md and results/user.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-full}
[ $# -gt 0 ] && shift
if [ "$mode" = real ] || [ "$mode" = lossy ]; then
	bin=$(mktemp -d /tmp/socksbench-bin.XXXXXX)
	trap 'rm -rf "$bin"' EXIT
	go build -o "$bin/socksbench" ./test/bench
	go build -o "$bin/socksd" ./cmd/socksd
	out=${BENCH_OUT:-results}
	mkdir -p "$out"
	export TORNET_KEYCACHE=${TORNET_KEYCACHE-$HOME/.cache/socksd/tornet-keys}
	timeout --signal=TERM --kill-after=30 900 \
		"$bin/socksbench" user -profile "$mode" -socksd "$bin/socksd" -out "$out" "$@" \
		>/dev/null 2> >(tee "$out/user.log" >&2)
	echo "wrote $out/user.md" >&2
	exit 0
fi
case $mode in quick) limit=600 torlimit=600 ;; full) limit=1800 torlimit=1800 ;; *) echo "mode must be quick or full" >&2; exit 2 ;; esac

# Peers from Debian (installed when missing; needs root, as dante does).
missing=()
command -v microsocks >/dev/null || missing+=(microsocks)
[ -x /usr/sbin/danted ] || missing+=(dante-server)
# tor and tor-gencert (both in Debian's tor) for the private network.
if [ "${BENCH_TOR:-1}" != 0 ] && { ! command -v tor-gencert >/dev/null || ! { command -v tor || [ -x /usr/sbin/tor ]; } >/dev/null; }; then
	missing+=(tor)
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2; }
fi
# dante's packaged service must not hold a port or pid file of ours.
systemctl disable --now danted >/dev/null 2>&1 || true

bin=$(mktemp -d /tmp/socksbench-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/socksbench" ./test/bench
# The Go peers live in their own module so socksd's go.mod never depends on them.
(cd test/bench/peers && go build -o "$bin/armon" ./armon && go build -o "$bin/thingsgo" ./thingsgo)
socksd=()
if go build -o "$bin/socksd" ./cmd/socksd 2>"$bin/socksd-build.log"; then
	socksd=(-socksd "$bin/socksd")
else
	echo "warning: cmd/socksd does not build; measuring peers only:" >&2
	cat "$bin/socksd-build.log" >&2
fi
out=${BENCH_OUT:-results}
mkdir -p "$out"
timeout --signal=TERM --kill-after=30 "$limit" \
	"$bin/socksbench" run -mode "$mode" -out "$out" -peers "$bin" "${socksd[@]}" "$@"
echo "wrote $out/bench.md and $out/bench.png" >&2

[ "${BENCH_TOR:-1}" = 0 ] && exit 0
if [ ${#socksd[@]} -eq 0 ]; then
	echo "warning: no socksd build; skipping the through-Tor phase" >&2
	exit 1
fi
case $mode in
quick) torflags=(-reps 3 -n 40 -circuits 4 -bulk-n 4 -bulk-bytes $((2 << 20)) -dns-time 1s -dns-new 5000) ;;
full) torflags=(-reps 3 -plain -tcp-too) ;;
esac
export TORNET_KEYCACHE=${TORNET_KEYCACHE-$HOME/.cache/socksd/tornet-keys}
rm -f "$out/tor.md"
# shellcheck disable=SC2086 # BENCH_TOR_FLAGS is a list of flags
if timeout --signal=TERM --kill-after=30 "$torlimit" \
	"$bin/socksbench" tor "${socksd[@]}" -out "$out" "${torflags[@]}" ${BENCH_TOR_FLAGS:-} \
	>/dev/null 2> >(tee "$out/tor.log" >&2); then
	{ echo; cat "$out/tor.md"; } >>"$out/bench.md"
	echo "wrote $out/tor.md (appended to $out/bench.md)" >&2
else
	echo "the through-Tor phase failed; $out/bench.md has the loopback half only" >&2
	exit 1
fi
