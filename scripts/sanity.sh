#!/usr/bin/env bash
# ansible-test sanity on a copy of the tracked files laid out as
# ansible_collections/difyops/fleet (ansible-test requires that path).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# Outside the checkout: inside it, ansible-test would follow this repo's
# .gitignore and see no files.
work=${SANITY_WORKDIR:-/var/tmp/difyops-sanity}
dest=$work/ansible_collections/difyops/fleet
rm -rf "$work"
mkdir -p "$dest"
# Tracked and new (not ignored) files, as they are in the work tree.
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$dest/$(dirname "$f")"
  cp -a "$f" "$dest/$f"
done
# ansible-test fetches a pip bootstrap script from a host we cannot reach;
# give it our stand-in under the cache names it looks for.
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
for v in $(grep -rhoE "pip_version = '[0-9.]+'|PIP_VERSION *= *'[0-9.]+'" "$top"/.venv/lib/python3*/site-packages/ansible_test/_internal/ 2>/dev/null | grep -oE "[0-9][0-9.]*" | sort -u) 24.2 25.1.1; do
  cp "$top/scripts/ansible-test-get-pip.py" "$cache/get_pip_${v//./_}.py"
done
cd "$dest"
py=$("$top/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export PATH=$top/.venv/bin:$PATH
exec ansible-test sanity --python "$py" --requirements --color no "$@"
