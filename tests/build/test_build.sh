#!/usr/bin/env bash
# The collection builds into a tarball that ansible-galaxy installs, and the
# installed copy is usable: its roles and plugins resolve.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp -d /var/tmp/difyops-build.XXXXXX)
trap 'rm -rf "$out"' EXIT
cd "$top"
export PATH=$top/.venv/bin:$PATH
ansible-galaxy collection build --force --output-path "$out" . >/dev/null
tarball=$(ls "$out"/difyops-fleet-*.tar.gz)
echo "built $(basename "$tarball") ($(du -h "$tarball" | cut -f1))"
# Nothing generated or secret may be in the artifact.
if tar -tzf "$tarball" | grep -E '(^|/)(\.venv|\.collections|\.lab|inventories/lab|secrets)/' ; then
  echo "FAILED: generated state inside the tarball" >&2; exit 1
fi
# Install with only the scratch path configured, so this checkout (linked as
# the collection for development) does not count as "already installed".
ANSIBLE_COLLECTIONS_PATH=$out/installed ansible-galaxy collection install --offline --no-deps --force \
  -p "$out/installed" "$tarball" >/dev/null
inst=$out/installed/ansible_collections/difyops/fleet
test -f "$inst/MANIFEST.json"
test -f "$inst/roles/common/meta/argument_specs.yml"
# The installed copy (not this checkout) answers ansible-doc.
ANSIBLE_COLLECTIONS_PATH=$out/installed ansible-doc -t filter difyops.fleet.host_address >/dev/null
ANSIBLE_COLLECTIONS_PATH=$out/installed ansible-doc -t role difyops.fleet.common >/dev/null
echo "build: 1 passed, 0 failed"
