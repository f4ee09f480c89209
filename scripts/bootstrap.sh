#!/usr/bin/env bash
# Prepare a controller (a fresh Debian machine is enough): Python venv with
# requirements.txt, and this checkout made visible to Ansible as the
# collection difyops.fleet (a link under .collections/, which ansible.cfg
# names). Idempotent: a second run does nothing new.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
py=${PYTHON:-python3}

if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "installing python3-venv"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing Python requirements into .venv"
  "$py" -m venv .venv
  .venv/bin/pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  .venv/bin/pip install -q -r requirements.txt 2>&1 | grep -v "is ignored" || true
  .venv/bin/python -c "import ansible, ansible_mitogen, molecule, testinfra, hypothesis"
  echo "$want" >"$stamp"
fi

# Mitogen's strategy plugins at a fixed path under .collections, which
# ansible.cfg names (strategy_plugins), whatever the venv's Python version.
mitogen=$(.venv/bin/python -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))')
mkdir -p .collections
if [ "$(readlink .collections/ansible_mitogen 2>/dev/null)" != "$mitogen" ]; then
  rm -rf .collections/ansible_mitogen
  ln -s "$mitogen" .collections/ansible_mitogen
fi

# The checkout as ansible_collections/difyops/fleet (a relative link, so each
# clone points at itself).
mkdir -p .collections/ansible_collections/difyops
if [ "$(readlink .collections/ansible_collections/difyops/fleet 2>/dev/null)" != "../../.." ]; then
  rm -rf .collections/ansible_collections/difyops/fleet
  ln -s ../../.. .collections/ansible_collections/difyops/fleet
fi
