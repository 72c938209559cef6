#!/usr/bin/env bash
# The test suite, N times in a row, while a CPU-heavy job runs beside it (issue 11: "no test depends
# on timing; the full suite passes three times in a row while another CPU-heavy job runs").
#
# The job beside it is a real rtdeploy workload: an onnxruntime benchmark of ResNet-50 with every
# intra-op thread the library wants, in a loop, so the suite never has a quiet machine. Each run's
# outcome, pytest's summary line, its wall time and the load average are appended to the results file.
#
# Usage: benchmarks/suite_under_load.sh [RUNS] [RESULTS.md]     (from the repository root, venv active
#        or PYTHON=/path/to/python)
set -uo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-3}
OUT=${2:-benchmarks/results/suite_under_load.md}
PY=${PYTHON:-.venv/bin/python}
WORK=$(mktemp -d)
trap 'kill -- -$HOG 2>/dev/null; rm -rf "$WORK"' EXIT

# The CPU-heavy job, in its own process group so it can be stopped with everything it started.
set -m
( while true; do
    "$PY" -m rtdeploy.cli.main bench --depth 50 --backend onnxruntime --duration 20s --repeats 1 \
        --workdir "$WORK/bench" --json /dev/null --no-progress >/dev/null 2>&1
  done ) &
HOG=$!
set +m
sleep 20  # let the job reach its timed loop before the first run starts

{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), commit $(git rev-parse --short HEAD)"
  echo
  echo "Beside it: \`rtdeploy bench --depth 50 --backend onnxruntime --duration 20s\` in a loop (onnxruntime's default threads)."
  echo
  echo "| run | result | pytest summary | wall | load average at the end (1/5/15 min) |"
  echo "|---|---|---|---|---|"
} >> "$OUT"

failed=0
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  log="$WORK/run$i.log"
  RTDEPLOY_REQUIRE_TRT_CONFORMANCE=${RTDEPLOY_REQUIRE_TRT_CONFORMANCE:-1} "$PY" -m pytest -q -rs -p no:cacheprovider >"$log" 2>&1
  rc=$?
  wall=$(( $(date +%s) - start ))
  summary=$(grep -E '^=+ .*(passed|failed|error).* =+$|^[0-9]+ (passed|failed)' "$log" | tail -1 | sed 's/=//g' | xargs)
  [ "$rc" -eq 0 ] && result=pass || { result="FAIL (rc $rc)"; failed=1; grep -E '^(FAILED|ERROR) ' "$log" | head -20 >> "$OUT.failures"; }
  echo "| $i | $result | $summary | $((wall / 60)) min $((wall % 60)) s | $(cut -d' ' -f1-3 /proc/loadavg) |" >> "$OUT"
  echo "run $i: $result, $summary, ${wall}s"
done
exit $failed
