#!/usr/bin/env bash
# make soak: the reliability suite (test/e2e/reliability_*_test.go) in its
# long form against a private Tor network: 5,000 idle connections, 500
# slowloris clients at a 30 s handshake deadline, 10,000 garbage
# connections, a flood under RLIMIT_NOFILE 256, tor killed -9 ten times
# and frozen under load, DNS pool exhaustion and junk, and an 8-minute
# churn of 100 streams/s from 20 identities. About 15 minutes. Each test
# appends its numbers to $SOAK_OUT/report.md (default results/soak).
#
#   SOAK_RUN=Churn make soak   # one test (a regexp after TestReliability)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${SOAK_OUT:-results/soak}
mkdir -p "$OUT"
report="$PWD/$OUT/report.md"
{
	echo "# make soak, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(go version | cut -d' ' -f3), $(nproc) CPUs, socksd built without the race detector"
	echo
} >"$report"
SOCKSD_TORNET=1 SOCKSD_SOAK=long SOCKSD_SOAK_REPORT="$report" \
	go test -count=1 -timeout 45m -run "^TestReliability${SOAK_RUN:-}" -v ./test/e2e 2>&1 | tee "$OUT/test.log"
rc=${PIPESTATUS[0]}
echo
cat "$report"
exit "$rc"
