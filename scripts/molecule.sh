#!/usr/bin/env bash
# Run one molecule scenario with the project's environment.
# Usage: scripts/molecule.sh SCENARIO [ACTION] [molecule args...]
#   ACTION defaults to "test"; e.g. converge, verify, idempotence, destroy.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scenario=${1:?usage: scripts/molecule.sh SCENARIO [ACTION]}
action=${2:-test}
shift; [ $# -gt 0 ] && shift
bash scripts/bootstrap.sh >/dev/null
bash lab/build-image.sh trixie >/dev/null
bash lab/build-image.sh bookworm >/dev/null
export CONTAINERS_CONF=$top/lab/containers.conf
export ANSIBLE_NOCOLOR=1 NO_COLOR=1 PY_COLORS=0 ANSIBLE_FORCE_COLOR=0
export ANSIBLE_COLLECTIONS_PATH=$top/.collections
# Molecule writes its own ansible.cfg: take the strategy (Mitogen or plain,
# one setting in the project's ansible.cfg) from ours, unless set already.
export ANSIBLE_STRATEGY_PLUGINS=${ANSIBLE_STRATEGY_PLUGINS:-$top/.collections/ansible_mitogen/plugins/strategy}
export ANSIBLE_STRATEGY=${ANSIBLE_STRATEGY:-$(sed -n 's/^strategy *= *//p' "$top/ansible.cfg")}
export PATH=$top/.venv/bin:$PATH
# testinfra runs the scenarios' test commands with podman exec, not one
# ansible process per command (tests/lib/difyops_testinfra.py).
export PYTHONPATH=$top/tests/lib${PYTHONPATH:+:$PYTHONPATH} PYTEST_PLUGINS=difyops_testinfra
exec molecule "$action" -s "$scenario" "$@"
