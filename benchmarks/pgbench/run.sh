#!/usr/bin/env bash
# pgbench on one lab host: Debian's default PostgreSQL settings against the
# settings difyops.fleet.postgresql applies (its tier playbook, backups off),
# same host, same data set, same client load, in one run. The two
# configurations alternate (ROUNDS times) so that load drift on the machine
# hits both; read-write (TPC-B-like) and read-only (-S) workloads.
# Usage: benchmarks/pgbench/run.sh [SCALE] [SECONDS] [CLIENTS] [ROUNDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
scale=${1:-50} seconds=${2:-30} clients=${3:-8} rounds=${4:-2}
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
bench() {  # label [pgbench options]; prints the TPS
  local label=$1; shift
  x runuser -u postgres -- pgbench -n "$@" -c "$clients" -j 2 -T 10 bench >/dev/null   # warm-up
  x runuser -u postgres -- pgbench -n "$@" -c "$clients" -j 2 -T "$seconds" bench >"$work/$label.txt"
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/$label.txt"
}
dropin=/etc/postgresql/17/main/conf.d/60-difyops.conf
use() {  # default|tuned: Debian's settings are the server without the role's drop-in
  if [ "$1" = default ]; then x mv $dropin /root/60-difyops.conf.off; else x mv /root/60-difyops.conf.off $dropin; fi
  x systemctl restart postgresql@17-main
  x pg_isready -q -t 60
}
x runuser -u postgres -- createdb bench
x runuser -u postgres -- pgbench -i -q -s "$scale" bench >/dev/null
size=$(x runuser -u postgres -- psql -XAtqc "SELECT pg_size_pretty(pg_database_size('bench'))" bench)
show() { x runuser -u postgres -- psql -XAtqc "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers','work_mem','effective_cache_size','maintenance_work_mem','max_wal_size','wal_buffers','random_page_cost','checkpoint_completion_target','max_connections','huge_pages','wal_compression','jit')"; }
defaults_settings=$(show)
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
declare -A sum
for mode in rw ro; do for cfg in default tuned; do sum[$mode-$cfg]=0; done; done
cur=tuned
for r in $(seq "$rounds"); do
  # alternate the order: tuned, default, default, tuned, ...
  for cfg in $([ $((r % 2)) = 1 ] && echo "tuned default" || echo "default tuned"); do
    [ "$cfg" = "$cur" ] || { use "$cfg"; cur=$cfg; }
    rw=$(bench "rw-$cfg-$r"); ro=$(bench "ro-$cfg-$r" -S)
    echo "round $r $cfg: read-write $rw tps, read-only $ro tps" >&2
    sum[rw-$cfg]=$(python3 -c "print(${sum[rw-$cfg]} + $rw)")
    sum[ro-$cfg]=$(python3 -c "print(${sum[ro-$cfg]} + $ro)")
  done
done
avg() { python3 -c "print(round(${sum[$1]} / $rounds, 1))"; }
# (awk's $2, not the shell's)
# shellcheck disable=SC2016
mem=$(x awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
cpus=$(x nproc)
cat <<OUT
host: $name (Debian 13, PostgreSQL $(x runuser -u postgres -- psql -XAtqc 'SHOW server_version'), ${mem} MiB, ${cpus} CPUs seen)
pgbench scale $scale (database $size), $clients clients, 2 threads, ${seconds}s per run after a 10s warm-up, $rounds alternating rounds
defaults: $defaults_settings
tuned:    $tuned_settings
read-write TPS: default $(avg rw-default), tuned $(avg rw-tuned), ratio $(python3 -c "print(round(${sum[rw-tuned]} / ${sum[rw-default]}, 2))")
read-only  TPS: default $(avg ro-default), tuned $(avg ro-tuned), ratio $(python3 -c "print(round(${sum[ro-tuned]} / ${sum[ro-default]}, 2))")
OUT
