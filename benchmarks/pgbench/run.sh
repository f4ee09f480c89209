#!/usr/bin/env bash
# pgbench on one lab host: Debian's default PostgreSQL settings, then the
# same server after difyops.fleet.postgresql applied its tuned settings.
# Same host, same data set, same client load, one run.
# Usage: benchmarks/pgbench/run.sh [SCALE] [SECONDS] [CLIENTS]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
scale=${1:-50} seconds=${2:-60} clients=${3:-8}
name=mol-pgbench-bench
export CONTAINERS_CONF=$top/lab/containers.conf
export ANSIBLE_COLLECTIONS_PATH=$top/.collections ANSIBLE_NOCOLOR=1
source .venv/bin/activate
work=$(mktemp -d)
trap 'podman rm -f $name >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
podman rm -f $name >/dev/null 2>&1 || true
podman run -d --name $name --hostname $name --systemd=always --privileged \
  --ulimit nofile=16384:16384 --ulimit nproc=8192:8192 localhost/difyops-lab:trixie /sbin/init >/dev/null
sleep 5
x() { podman exec $name "$@"; }
x apt-get -qq update >/dev/null
x env DEBIAN_FRONTEND=noninteractive apt-get -qq install -y postgresql-17 >/dev/null
bench() {  # label
  x runuser -u postgres -- psql -XAtqc "SELECT pg_stat_reset()" bench >/dev/null
  x runuser -u postgres -- pgbench -n -P 0 -c "$clients" -j 2 -T 15 bench >/dev/null   # warm-up
  x runuser -u postgres -- pgbench -n -c "$clients" -j 2 -T "$seconds" bench | tee "$work/$1.txt" >&2
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/$1.txt"
}
x runuser -u postgres -- createdb bench
x runuser -u postgres -- pgbench -i -q -s "$scale" bench >/dev/null
size=$(x runuser -u postgres -- psql -XAtqc "SELECT pg_size_pretty(pg_database_size('bench'))" bench)
show() { x runuser -u postgres -- psql -XAtqc "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers','work_mem','effective_cache_size','maintenance_work_mem','max_wal_size','wal_buffers','random_page_cost','checkpoint_completion_target','max_connections','huge_pages','wal_compression','jit')"; }
defaults_settings=$(show)
tps_default=$(bench default)

cat > "$work/inventory.yml" <<INV
all:
  children:
    dify_postgres:
      hosts:
        $name:
          ansible_connection: containers.podman.podman
  vars:
    postgresql_backup_enabled: false
    difyops_secrets:
      db_password: bench-db-password-0123456789
      db_replication_password: bench-repl-password-0123456789
      pgbackrest_cipher_pass: bench-cipher-pass-0123456789
INV
ansible-playbook -i "$work/inventory.yml" playbooks/tiers/postgresql.yml >"$work/converge.log" || { tail -40 "$work/converge.log"; exit 1; }
tuned_settings=$(show)
tps_tuned=$(bench tuned)
mem=$(x awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
cpus=$(x nproc)
cat <<OUT
host: $name (Debian 13, PostgreSQL $(x runuser -u postgres -- psql -XAtqc 'SHOW server_version'), ${mem} MiB, ${cpus} CPUs seen)
pgbench scale $scale (database $size), $clients clients, 2 threads, ${seconds}s TPC-B-like, after a 15s warm-up
defaults: $defaults_settings
tuned:    $tuned_settings
tps default: $tps_default
tps tuned:   $tps_tuned
ratio tuned/default: $(python3 -c "print(round($tps_tuned / $tps_default, 2))")
OUT
