#!/usr/bin/env bash
# The whole fleet, end to end, the way a user runs it: lab hosts reached over
# SSH, site.yml converged, rerun with changed=0 on every host, a
# --check --diff run with plain ansible-core (no Mitogen) that reports no
# change, a --limit run to one api host
# that changes nothing, the same at -vvv --diff and with the JSON callback
# (searched for every secret), cross-host verification
# (tests/fleet: testinfra and the contract probe's reports), all on the
# previous Dify release line (FLEET_FROM_RELEASE, 1.13.3); then the
# inventory moves to the default release with its new services' groups and
# playbooks/upgrade.yml rolls every Dify host onto it (the probe's next image)
# while a request loop through the edge counts the answers (no 5xx, no
# connection error allowed) and streamed chat answers go from an api host
# through Celery to a worker and back over the event bus (every one must
# end), the verification again and a rerun with changed=0; a roll that fails on an api host (the
# host is put back in the edge's pool); a Redis and Sentinel password rotation
# through the running Dify (the Dify tier alone refuses to render passwords
# Redis does not accept yet; afterwards the old passwords are refused
# everywhere); playbooks/restore.yml with Dify's writers stopped (a row
# written after the backup is back, the old data directory moved aside), the
# replicas rebuilt, a whole rerun with changed=0, and the checks again.
# Timings and figures go to build/fleet/ (see benchmarks/fleet/).
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

# The lab starts on the previous release line and upgrades to the
# collection's default under load (FLEET_FROM_RELEASE, default 1.13.3).
from_release=${FLEET_FROM_RELEASE:-1.13.3}
to_release=$(sed -n 's/^dify_version: "\(.*\)"/\1/p' roles/dify/defaults/main.yml)
step lab-up python lab/lab.py up --layout "$layout" --dify-version "$from_release"
step fixtures ansible-playbook lab/fixtures.yml -i inventories/lab
step converge ansible-playbook playbooks/site.yml -i inventories/lab
step idempotence ansible-playbook playbooks/site.yml -i inventories/lab
no_changes "$out/idempotence.log"
# Plain ansible-core (no Mitogen) stays supported: the --check --diff pass
# runs with the linear strategy; every other run uses ansible.cfg's choice.
ANSIBLE_STRATEGY=linear step check-diff-plain ansible-playbook playbooks/site.yml -i inventories/lab --check --diff
no_changes "$out/check-diff-plain.log"
grep -q 'First admin account: https://' "$out/converge.log" || { echo "no summary in the converge log"; exit 1; }
# --limit to one api host: the plan still sees the whole fleet (preflight
# gathers the others' facts read-only), so nothing changes.
api1=$(python -c "import yaml; inv=yaml.safe_load(open('inventories/lab/hosts.yml'))['all']; \
print(list(inv['children']['dify_api']['hosts'])[0])")
step limit ansible-playbook playbooks/site.yml -i inventories/lab --limit "$api1"
no_changes "$out/limit.log"
# No secret in any output (tests/fleet/test_no_secret_in_output.py searches
# every log here): the same --limit run at -vvv with --diff, and with the JSON
# callback, the ways a user sees whole module results.
step leak-vvv ansible-playbook playbooks/site.yml -i inventories/lab --limit "$api1" -vvv --diff
ANSIBLE_STDOUT_CALLBACK=ansible.posix.json step leak-json ansible-playbook playbooks/site.yml -i inventories/lab \
  --limit "$api1" --diff
FLEET_EXPECT_RELEASE=$from_release step verify python -m pytest -q -p no:cacheprovider tests/fleet

# Upgrade under load from $from_release to $to_release, as a user does: the
# inventory gets the new release and the groups of its new services
# (lab.py release), then upgrade.yml; every Dify container moves to
# localhost/difyops-probe:next (same probe, another image ID) standing in
# for the release's images, and parses its env as that release does.
lab_dir=$top/.lab
step release python lab/lab.py release "$to_release"
cat >"$out/upgrade-vars.yml" <<VARS
dify_images_archive: $lab_dir/difyops-probe-next.tar
dify_images:
  api: localhost/difyops-probe:next
  web: localhost/difyops-probe:next
  sandbox: localhost/difyops-probe:next
  plugin_daemon: localhost/difyops-probe:next
  agent_backend: localhost/difyops-probe:next
  local_sandbox: localhost/difyops-probe:next
VARS
edge_ip=$(python -c "import yaml,sys; inv=yaml.safe_load(open('inventories/lab/hosts.yml'))['all']; \
print(inv['hosts'][list(inv['children']['dify_edge']['hosts'])[0]]['ansible_host'])")
touch "$out/upgrade.running"
python scripts/request-loop.py --address "$edge_ip" --name dify.lab.test --path /console/api/setup \
  --stream-path /v1/chat-messages --while "$out/upgrade.running" --out "$out/upgrade-requests.json" >/dev/null &
loop=$!
sleep 3
set +e
step upgrade ansible-playbook playbooks/upgrade.yml -i inventories/lab -e "@$out/upgrade-vars.yml"
rc=$?
set -e
sleep 3
rm -f "$out/upgrade.running"
wait $loop
[ $rc -eq 0 ] || exit $rc
python - "$out/upgrade-requests.json" <<'PY' | tee -a "$out/timings.txt"
import json, sys
r = json.load(open(sys.argv[1]))
print("upgrade requests: %(requests)d in %(seconds)s s, 5xx: %(status_5xx)d, connection errors: %(connection_errors)d" % r)
print("upgrade backends: %s" % ", ".join("%s=%d" % kv for kv in sorted(r["backends"].items())))
print("upgrade streamed answers (api -> Celery -> worker -> event bus -> api): %(streams_ok)d of %(streams)d ok"
      % r + ", by worker: %s" % r["stream_workers"])
if r["stream_failures"]:
    print("stream failures: %s" % r["stream_failures"])
sys.exit(0 if r["requests"] > 0 and r["status_5xx"] == 0 and r["connection_errors"] == 0
         and r["streams"] > 0 and r["streams_ok"] == r["streams"] else 1)
PY
# Then site.yml, as README says after an upgrade that adds services: it
# applies what they change in the other tiers' sizes (the capacity plan:
# Redis maxmemory on a host the websocket api now shares, PostgreSQL
# max_connections for its pool, restarted replicas first) with the new images
# (from here on the lab's images, as a user's inventory would say); a rerun
# after it changes nothing; then the cross-host checks of the upgraded fleet.
step converge-upgraded ansible-playbook playbooks/site.yml -i inventories/lab -e "@$out/upgrade-vars.yml"
step rerun-upgraded ansible-playbook playbooks/site.yml -i inventories/lab -e "@$out/upgrade-vars.yml"
no_changes "$out/rerun-upgraded.log"
FLEET_EXPECT_IMAGE=localhost/difyops-probe:next FLEET_EXPECT_RELEASE=$to_release step verify-upgraded \
  python -m pytest -q -p no:cacheprovider tests/fleet

# A roll that fails on an api host never leaves it drained: roll the last api
# host onto an image that exists nowhere (its container task fails after the
# drain); the play must fail, the host must have been taken out and put back
# in the edge's pool, and it must still serve the upgraded image.
api_last=$(python -c "import yaml; inv=yaml.safe_load(open('inventories/lab/hosts.yml'))['all']; \
print(list(inv['children']['dify_api']['hosts'])[-1])")
cat >"$out/upgrade-fail-vars.yml" <<VARS
dify_upgrade_backup: false
dify_images:
  api: localhost/difyops-probe:nowhere
VARS
started=$(date +%s)
set +e
ansible-playbook playbooks/upgrade.yml -i inventories/lab -e "@$out/upgrade-vars.yml" \
  -e "@$out/upgrade-fail-vars.yml" --limit "$api_last" >"$out/upgrade-fails.log" 2>&1
rc=$?
set -e
printf '%-16s %4d s    rc=%d (it must fail)\n' upgrade-fails $(( $(date +%s) - started )) "$rc" | tee -a "$out/timings.txt"
[ $rc -ne 0 ] || { echo "upgrade-fails: the roll onto a missing image did not fail"; exit 1; }
python - "$out/upgrade-fails.log" "$api_last" <<'PY'
import sys
log, host = open(sys.argv[1]).read(), sys.argv[2]
# Each task's block of the log, in order: drained (pool edit changed), then a
# failure on the host, then put back (pool edit changed again).
events = []
for block in log.split("\nTASK [")[1:]:
    name = block.split("]", 1)[0]
    if "upstream pools" in name and ("changed: [%s" % host) in block:
        events.append("pool")
    elif ("fatal: [%s" % host) in block and "...ignoring" not in block:
        events.append("fatal")
print("upgrade-fails: %s" % " -> ".join(events))
order = "".join(e[0] for e in events)  # p(ool) and f(atal)
sys.exit(0 if "pfp" in order.replace("ff", "f") else 1)
PY
FLEET_EXPECT_IMAGE=localhost/difyops-probe:next step verify-after-failed-roll python -m pytest -q -p no:cacheprovider \
  tests/fleet -k "edge_pool or upgraded_image"

# Redis and Sentinel password rotation through the running Dify: rotate both
# (rotate-secrets.yml keeps the previous file as a .bak), then the Dify tier
# alone must refuse to render passwords Redis does not accept yet (fail before
# any change, naming --tags redis,dify), then site.yml rolls them in and
# retires the old ones (with exactly the tags rotate-secrets.yml prints:
# redis,dify,exporters - the Redis exporter logs in with it too); every
# Redis client container carries the new passwords, the probe's Redis,
# Sentinel and Celery checks pass with them, and every Redis server and
# Sentinel refuses the old ones (tests/fleet/test_redis_rotation.py).
baks_before=$(find secrets -maxdepth 1 -name 'lab.yml.*.bak' | sort)
step rotate-redis ansible-playbook playbooks/rotate-secrets.yml -i inventories/lab \
  -e '{"rotate": ["redis_password", "redis_sentinel_password"]}'
rotated_from=$(comm -13 <(echo "$baks_before") <(find secrets -maxdepth 1 -name 'lab.yml.*.bak' | sort) | tail -n 1)
[ -n "$rotated_from" ] || { echo "rotate-redis: no backup of the previous secrets file"; exit 1; }
rotated_from=$top/$rotated_from
started=$(date +%s)
set +e
ansible-playbook playbooks/site.yml -i inventories/lab --tags dify >"$out/rotate-dify-only.log" 2>&1
rc=$?
set -e
printf '%-16s %4d s    rc=%d (it must fail)\n' rotate-dify-only $(( $(date +%s) - started )) "$rc" | tee -a "$out/timings.txt"
[ $rc -ne 0 ] || { echo "rotate-dify-only: --tags dify rendered passwords Redis does not accept"; exit 1; }
grep -q -- 'not accept the password.* --tags redis,dify' <(tr -s ' \n' ' ' <"$out/rotate-dify-only.log") \
  || { echo "rotate-dify-only: no refusal naming --tags redis,dify"; tail -n 30 "$out/rotate-dify-only.log"; exit 1; }
grep -E '^[a-z0-9_.-]+ +: ok=' "$out/rotate-dify-only.log" | grep -v ' changed=0 ' \
  && { echo "rotate-dify-only: hosts above changed something before the refusal"; exit 1; }
rotate_tags=$(tr -s ' \n' ' ' <"$out/rotate-redis.log" | grep -oE -- '--tags [a-z_,]+' | tail -n 1 | cut -d' ' -f2)
[ -n "$rotate_tags" ] || { echo "rotate-redis: no --tags to run printed"; exit 1; }
step rotate-converge ansible-playbook playbooks/site.yml -i inventories/lab --tags "$rotate_tags" \
  -e "@$out/upgrade-vars.yml"
FLEET_ROTATED_FROM=$rotated_from step verify-rotated python -m pytest -q -p no:cacheprovider \
  tests/fleet/test_redis_rotation.py

# Restore with Dify's writers stopped: a marker row written after the
# upgrade's backup (its WAL archived), restore.yml to the end of the archive;
# the log must show stop writers -> restore -> start writers, the marker is
# back, the old data directory moved aside, every writer stopped before
# PostgreSQL restarted on the restored data and running again
# (tests/fleet/test_restore.py); then the replicas are rebuilt as restore.yml
# says, a whole rerun changes nothing, and the cross-host checks (replication,
# the probes' database checks, no secret - old or new - in any log) pass.
primary=$(python -c "import yaml; inv=yaml.safe_load(open('inventories/lab/hosts.yml'))['all']; \
print(list(inv['children']['dify_postgres']['hosts'])[0])")
pg() { podman exec "$primary" runuser -u postgres -- psql -XAtq -d dify -c "$1"; }
token="restore-$(date +%s)"
pg "CREATE TABLE IF NOT EXISTS difyops_restore_marker (v text); INSERT INTO difyops_restore_marker VALUES ('$token')" >/dev/null
segment=$(pg "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 60); do
  [ "$(pg "SELECT coalesce(last_archived_wal, '') >= '$segment' FROM pg_stat_archiver")" = t ] && break
  sleep 1
done
[ "$(pg "SELECT coalesce(last_archived_wal, '') >= '$segment' FROM pg_stat_archiver")" = t ] \
  || { echo "restore: WAL segment $segment with the marker was not archived within 60 s"; exit 1; }
restore_started=$(date +%s)
step restore ansible-playbook playbooks/restore.yml -i inventories/lab
python - "$out/restore.log" <<'PY'
import sys
log = open(sys.argv[1]).read()
events = []
for block in log.split("\nTASK [")[1:]:
    name = block.split("]", 1)[0]
    if "changed:" not in block:
        continue
    for key, short in (("Stop Dify's writers", "stop writers"), ("Restore the backup", "restore"),
                       ("Start Dify's writers again", "start writers")):
        if name.endswith(key):
            events.append(short)
print("restore: %s" % " -> ".join(events))
sys.exit(0 if events == ["stop writers", "restore", "start writers"] else 1)
PY
FLEET_RESTORE_TOKEN=$token FLEET_RESTORE_STARTED=$restore_started step verify-restore \
  python -m pytest -q -p no:cacheprovider tests/fleet/test_restore.py
step rebuild-replicas ansible-playbook playbooks/site.yml -i inventories/lab --tags postgresql \
  -e postgresql_replica_rebuild=true
step rerun-after-ops ansible-playbook playbooks/site.yml -i inventories/lab -e "@$out/upgrade-vars.yml"
no_changes "$out/rerun-after-ops.log"
FLEET_ROTATED_FROM=$rotated_from step verify-after-ops python -m pytest -q -p no:cacheprovider tests/fleet \
  -k "every_service_reports or postgres_replica or console_setup or streamed or sentinels or test_no_secret_in_output"

grep -E 'tasks? |ok=' "$out/converge.log" | tail -n 12 >"$out/converge-recap.txt" || true
echo "fleet: converge, idempotence, check --diff, verify, upgrade under load, Redis password rotation, restore and verify passed"
