#!/usr/bin/env bash
# Wall time of a cold converge and of a no-change rerun of a lab fleet, with
# task counts. Usage: benchmarks/fleet/run.sh [LAYOUT ...]   (default: fleet fleet14)
# Each layout: lab up (fresh hosts), fixtures, site.yml cold, site.yml again
# and once more with plain ansible-core (ANSIBLE_STRATEGY=linear) as the
# reference; both reruns must report changed=0. Results:
# build/bench-fleet/<layout>.txt and a summary line per layout on stdout. The
# lab is removed at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
export PATH=$top/.venv/bin:$PATH CONTAINERS_CONF=$top/lab/containers.conf ANSIBLE_NOCOLOR=1
out=$top/build/bench-fleet
mkdir -p "$out"
trap 'python lab/lab.py down >/dev/null 2>&1 || true' EXIT

timed() {  # timed LOG command...: seconds on stdout
  local log=$1; shift
  local s e
  s=$(date +%s.%N)
  "$@" >"$log" 2>&1 || { echo "failed: $* (see $log)" >&2; tail -n 30 "$log" >&2; exit 1; }
  e=$(date +%s.%N)
  python3 -c "print(round($e - $s, 1))"
}

counts() {  # tasks run on all hosts together (ok + changed + skipped) and changed, from a recap
  python3 - "$1" <<'PY'
import re, sys
ok = changed = skipped = hosts = 0
for line in open(sys.argv[1]):
    m = re.match(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=\d+\s+skipped=(\d+)", line)
    if m and m.group(1) != "localhost":
        hosts += 1; ok += int(m.group(2)); changed += int(m.group(3)); skipped += int(m.group(4))
print("hosts=%d task_results=%d changed=%d skipped=%d" % (hosts, ok + skipped, changed, skipped))
PY
}

for layout in "${@:-fleet fleet14}"; do
  for l in $layout; do
    python lab/lab.py up --layout "$l" >"$out/$l-up.log" 2>&1
    ansible-playbook lab/fixtures.yml -i inventories/lab >"$out/$l-fixtures.log" 2>&1
    # ansible.cfg's strategy (Mitogen) for the cold converge and the rerun,
    # then the same rerun with plain ansible-core as the reference.
    cold=$(timed "$out/$l-converge.log" ansible-playbook playbooks/site.yml -i inventories/lab)
    rerun=$(timed "$out/$l-rerun.log" ansible-playbook playbooks/site.yml -i inventories/lab)
    plain=$(ANSIBLE_STRATEGY=linear timed "$out/$l-rerun-plain.log" ansible-playbook playbooks/site.yml -i inventories/lab)
    for log in "$out/$l-rerun.log" "$out/$l-rerun-plain.log"; do
      if grep -E '^\S+ +: ok=' "$log" | grep -vqE 'changed=0 '; then
        echo "a rerun of $l changed something (see $log)" >&2; exit 1
      fi
    done
    line="layout=$l cold_converge_s=$cold rerun_s=$rerun rerun_plain_s=$plain load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)"
    line="$line cold[$(counts "$out/$l-converge.log")] rerun[$(counts "$out/$l-rerun.log")]"
    echo "$line" | tee "$out/$l.txt"
    python lab/lab.py down >/dev/null 2>&1
  done
done
