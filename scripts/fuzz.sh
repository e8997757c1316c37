#!/usr/bin/env bash
# make fuzz: run every fuzz target in the repository, one at a time, for
# FUZZTIME each (default 60s), with FUZZ_PARALLEL workers (default 1, so
# the figures are per core and the machine stays usable). Writes a table
# of executions per target to $FUZZ_OUT/report.md (default results/fuzz)
# and fails if any target found a crasher (kept by go test under the
# package's testdata/fuzz/ for the regression run of `make test`).
#
#   FUZZTIME=10m make fuzz            # longer
#   FUZZTIME=10000000x FUZZ_PARALLEL=2 make fuzz
#                                     # 10^7 executions per target (go
#                                     # test's Nx form), both cores
#   FUZZ_ONLY=FuzzParseHead make fuzz # one target (a regexp on the name)
#
# FUZZ_MINIMIZETIME (default 10s) bounds how long the engine minimizes
# each new input. go test's own default is 60s: on a target that finds
# new coverage often, the workers then spend most of the run minimizing
# (measured: more than half of a FuzzParseHead run logged 0 execs/s).
# Crashers are minimized under the same bound.
set -uo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-60s}
PARALLEL=${FUZZ_PARALLEL:-1}
MINIMIZE=${FUZZ_MINIMIZETIME:-10s}
OUT=${FUZZ_OUT:-results/fuzz}
ONLY=${FUZZ_ONLY:-.}
mkdir -p "$OUT"
report="$OUT/report.md"
{
	echo "# make fuzz, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(go version | cut -d' ' -f3), $(nproc) CPUs, -fuzztime $FUZZTIME, -parallel $PARALLEL, -fuzzminimizetime $MINIMIZE"
	echo
	echo "| package | target | execs | execs/s | new interesting | result |"
	echo "|---|---|---:|---:|---:|---|"
} >"$report"
failed=0
engine=0
# Targets found by their declaration: no package is built to list them.
while IFS=: read -r file name; do
	dir=$(dirname "$file")
	name=${name#func }
	name=${name%%(*}
	[[ $name =~ $ONLY ]] || continue
	log="$OUT/$(echo "${dir#./}" | tr / _).$name.log"
	echo "fuzz: $dir $name ($FUZZTIME)" >&2
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$MINIMIZE" -parallel "$PARALLEL" "$dir" >"$log" 2>&1; then
		result=ok
	elif grep -q 'Failing input written to' "$log"; then
		result="CRASHER (see $log)"
		failed=1
	else
		# No input was saved: the fuzzing engine itself failed. Go before
		# 1.27 has a race in its fuzzing coordinator at the -fuzztime
		# deadline: on a loaded machine a worker still running then is
		# reported as "context deadline exceeded". Not a finding; the row
		# says so and the run does not fail for it.
		result="engine error at the deadline, no crasher (see $log)"
		engine=$((engine + 1))
	fi
	# The last progress line: "fuzz: elapsed: 1m0s, execs: 123 (2/sec), new interesting: 3 (total: 50)"
	last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -1)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	# Average rate over the run ("1h2m3s" → seconds).
	secs=$(sed -nE 's/.*elapsed: ([0-9hms]+),.*/\1/p' <<<"$last" |
		awk '{ t = 0; n = ""; for (i = 1; i <= length($0); i++) { c = substr($0, i, 1);
			if (c ~ /[0-9]/) n = n c; else { t += n * (c == "h" ? 3600 : c == "m" ? 60 : 1); n = "" } } print t }')
	rate=$([[ -n $execs && ${secs:-0} -gt 0 ]] && echo $((execs / secs)))
	newi=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	echo "| ${dir#./} | $name | ${execs:-?} | ${rate:-?} | ${newi:-?} | $result |" >>"$report"
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*(' . | sort)
if [[ $engine -gt 0 ]]; then
	echo >>"$report"
	echo "$engine target(s) hit the fuzzing engine's deadline race (no input saved); rerun them with FUZZ_ONLY." >>"$report"
fi
cat "$report"
exit $failed
