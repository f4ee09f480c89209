#!/usr/bin/env bash
# The whole fleet, end to end, the way a user runs it: lab hosts reached over
# SSH, site.yml converged, rerun with changed=0 on every host, a
# --check --diff run that reports no change. (Cross-host verification with
# testinfra and the contract probe's reports is still to be written.)
# Timings go to
# build/fleet/timings.txt (see benchmarks/fleet/).
# Usage: scripts/test-fleet.sh [LAYOUT]   (default fleet)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
layout=${1:-${LAYOUT:-fleet}}
export PATH=$top/.venv/bin:$PATH
export CONTAINERS_CONF=$top/lab/containers.conf ANSIBLE_NOCOLOR=1 PY_COLORS=0
out=$top/build/fleet
rm -rf "$out"; mkdir -p "$out"
keep=${FLEET_KEEP:-0}
cleanup() { [ "$keep" = 1 ] || python lab/lab.py down >/dev/null 2>&1 || true; }
trap cleanup EXIT

step() {  # step NAME command...: run, log, time
  local name=$1; shift
  local start end rc
  start=$(date +%s%N)
  set +e; "$@" >"$out/$name.log" 2>&1; rc=$?; set -e
  end=$(date +%s%N)
  local ms=$(( (end - start) / 1000000 ))
  printf '%-16s %4d.%01d s  rc=%d\n' "$name" $((ms / 1000)) $(((ms % 1000) / 100)) "$rc" | tee -a "$out/timings.txt"
  if [ $rc -ne 0 ]; then
    echo "FAILED: $name; last lines of $out/$name.log:"; grep -vE '^\s*$' "$out/$name.log" | tail -n 60 | sed 's/^/    /'
    return $rc
  fi
}

no_changes() {  # the recap of a log shows changed=0 and failed=0 for every host
  local log=$1
  grep -E '^[a-z0-9_.-]+ +: ok=' "$log" >"$log.recap"
  [ -s "$log.recap" ] || { echo "no recap in $log"; return 1; }
  if grep -vE 'changed=0 .*failed=0' "$log.recap"; then
    echo "hosts above changed something or failed; changed tasks:"; grep -E '^changed:|^--- before' "$log" | head -40
    return 1
  fi
}

step lab-up python lab/lab.py up --layout "$layout"
step fixtures ansible-playbook lab/fixtures.yml -i inventories/lab
step converge ansible-playbook playbooks/site.yml -i inventories/lab
step idempotence ansible-playbook playbooks/site.yml -i inventories/lab
no_changes "$out/idempotence.log"
step check-diff ansible-playbook playbooks/site.yml -i inventories/lab --check --diff
no_changes "$out/check-diff.log"
grep -E 'tasks? |ok=' "$out/converge.log" | tail -n 12 >"$out/converge-recap.txt" || true
echo "fleet: converge, idempotence and check --diff passed"
