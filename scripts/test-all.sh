#!/usr/bin/env bash
# Every test of the collection, the way CI runs it (`make test`):
#   static   unit + preflight tests, ansible-lint (production), ansible-test
#            sanity, collection build/install             (controller only)
#   molecule every molecule scenario, MOLECULE_JOBS at a time
#   fleet    the production-shaped fleet end to end (scripts/test-fleet.sh)
# The static checks need no lab host, so they run beside the molecule
# scenarios, which mostly wait on the lab hosts (apt, systemd, failovers).
# Each stage logs to build/test/<stage>.log; the timings of every stage and
# the total are printed at the end, failed or not (build/test/timings.txt).
# Usage: scripts/test-all.sh [STAGE...]   (default: static molecule fleet)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
export PATH=$top/.venv/bin:$PATH
out=$top/build/test
mkdir -p "$out"
: >"$out/timings.txt"
t0=$(date +%s)

stage() {  # stage NAME command...: run, log, time; rc of the command
  local name=$1 start rc; shift
  start=$(date +%s)
  "$@" >"$out/$name.log" 2>&1
  rc=$?
  printf '%-10s %5d s  %s\n' "$name" $(( $(date +%s) - start )) "$([ $rc -eq 0 ] && echo passed || echo "FAILED (rc $rc, build/test/$name.log)")" \
    >>"$out/timings.txt"
  return $rc
}

static() {
  local rc=0
  stage unit make --no-print-directory unit || rc=1
  stage lint make --no-print-directory lint || rc=1
  stage sanity make --no-print-directory sanity || rc=1
  stage build make --no-print-directory build || rc=1
  return $rc
}

report() {
  local failed=$1
  echo
  echo "make test: stage timings"
  cat "$out/timings.txt"
  printf '%-10s %5d s  %s\n' total $(( $(date +%s) - t0 )) "$([ "$failed" -eq 0 ] && echo passed || echo FAILED)"
}

show_failures() {  # the end of each failed stage's log
  grep FAILED "$out/timings.txt" | while read -r name _; do
    echo "---- last lines of build/test/$name.log"
    grep -vE '^\s*$' "$out/$name.log" | tail -n 60 | sed 's/^/    /'
  done
}

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(static molecule fleet)
failed=0
want() { printf '%s\n' "${stages[@]}" | grep -qx "$1"; }

if want static && want molecule; then
  static &
  static_pid=$!
  stage molecule make --no-print-directory molecule || failed=1
  wait "$static_pid" || failed=1
else
  if want static; then static || failed=1; fi
  if want molecule; then stage molecule make --no-print-directory molecule || failed=1; fi
fi
# The fleet runs last and alone: its figures (benchmarks/fleet) need the machine.
if want fleet && [ $failed -eq 0 ]; then
  stage fleet make --no-print-directory fleet || failed=1
fi
[ $failed -eq 0 ] || show_failures
grep -h -E '^(PASSED|FAILED) ' build/molecule/summary.txt 2>/dev/null | sed 's/^/molecule: /' || true
[ -f build/fleet/timings.txt ] && sed 's/^/fleet: /' build/fleet/timings.txt
report $failed
exit $failed
