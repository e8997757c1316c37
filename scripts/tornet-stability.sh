#!/usr/bin/env bash
# tornet-stability.sh [N] — run the real-Tor suite N times (default 10) in a
# row and print one line per run (pass/fail, suite wall time, network
# bring-up times, tor RSS), then the median bring-up time. Logs are kept in
# ${OUT:-/tmp/socksd-stability}/run-K.log. Extra `go test` flags: GOTESTFLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}
OUT=${OUT:-/tmp/socksd-stability}
export TORNET_KEYCACHE=${TORNET_KEYCACHE-$HOME/.cache/socksd/tornet-keys}
mkdir -p "$OUT"
pass=0; ups=()
printf '%-4s %-5s %8s  %s\n' run result suite "bring-up per network (s); tor RSS at end"
for ((k = 1; k <= N; k++)); do
  log="$OUT/run-$k.log"
  t0=$(date +%s.%N)
  if SOCKSD_TORNET=1 go test -race -count=1 -timeout 15m -v ${GOTESTFLAGS:-} ./test/... >"$log" 2>&1; then
    res=PASS; pass=$((pass + 1))
  else
    res=FAIL
  fi
  t1=$(date +%s.%N)
  nets=$(grep -o 'network ready in [0-9.]*s' "$log" | grep -o '[0-9.]*' | tr '\n' ' ' || true)
  for u in $nets; do ups+=("$u"); done
  rss=$(grep -o "RSS at the end: [0-9.]* MiB" "$log" | grep -o '[0-9.]* MiB' | tr '\n' ' ' || true)
  printf '%-4s %-5s %7.1fs  %s; %s\n' "$k" "$res" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$nets" "$rss"
  [[ $res == PASS ]] || grep -E -- '^\s*--- FAIL|^FAIL|panic:' "$log" | head -20 | sed 's/^/     /'
done
median=$(printf '%s\n' "${ups[@]}" | sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
echo "passed $pass/$N; network bring-up median ${median}s over ${#ups[@]} networks; logs in $OUT"
(( pass == N ))
