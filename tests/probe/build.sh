#!/usr/bin/env bash
# Build the Dify contract probe image from the lab base image and save it as a
# docker-archive tarball, the format `docker load` (dify_images_archive) reads.
# Usage: tests/probe/build.sh OUTPUT.tar [RELEASE]
#   RELEASE (default lab): the image tag. Another release (e.g. next) is the
#   same probe with its own label, so a different image ID: what the lab's
#   upgrade test rolls the fleet to.
# Reuses the image and the tarball when the probe files are unchanged.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTPUT.tar [RELEASE]}
release=${2:-lab}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../../lab/containers.conf}
top=$(cd "$here/../.." && pwd)
# The build context: the probe, and the contract it parses its env with
# (dify_schema and every release's data from plugins/module_utils; the
# release it stands in for by default is roles/dify's default dify_version).
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/contract"
cp "$here/Containerfile" "$here/probe.py" "$ctx/"
cp "$top/plugins/module_utils/dify_schema.py" "$top"/plugins/module_utils/dify_release_*.py "$ctx/contract/"
sed -n 's/^dify_version: "\(.*\)"/\1/p' "$top/roles/dify/defaults/main.yml" > "$ctx/contract/DEFAULT"
[ -s "$ctx/contract/DEFAULT" ] || { echo "no dify_version in roles/dify/defaults/main.yml" >&2; exit 1; }
# Dify's client libraries at the versions the default release pins (its
# contract data, client_libraries), as wheels for the lab image's Python
# (Debian 13: CPython 3.13, x86_64), cached between builds.
python3 - "$ctx/contract" > "$ctx/requirements.txt" <<'PY'
import importlib, sys
sys.path.insert(0, sys.argv[1])
version = open(sys.argv[1] + "/DEFAULT").read().strip()
release = importlib.import_module("dify_release_" + version.replace(".", "_")).RELEASE
for name, pinned in sorted(release["client_libraries"].items()):
    print("%s==%s" % (name, pinned))
PY
wheels=$top/build/probe-wheels
mkdir -p "$wheels" "$ctx/wheels"
pip=$top/.venv/bin/pip
[ -x "$pip" ] || pip="python3 -m pip"
$pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --implementation cp --python-version 3.13 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$wheels" -r "$ctx/requirements.txt" 2> >(grep -v "^WARNING: Location" >&2)
while IFS= read -r req; do
  name=${req%%==*}; pinned=${req#*==}
  norm=$(echo "$name" | tr '-' '_')
  found=$(find "$wheels" -maxdepth 1 -iname "${norm}-${pinned}-*.whl" | sort | head -n 1)
  [ -n "$found" ] || { echo "no wheel for $req in $wheels" >&2; exit 1; }
  cp "$found" "$ctx/wheels/"
done < "$ctx/requirements.txt"
tag=$( (cd "$ctx" && find . -type f | sort | xargs cat) | sha256sum | cut -c1-12)
image=localhost/difyops-probe:$release
have=$(podman image inspect --format '{{ index .Labels "difyops.probe.hash" }}' "$image" 2>/dev/null || true)
if [ "$have" != "$tag" ]; then
  podman build --network host --label "difyops.probe.hash=$tag" --label "difyops.probe.release=$release" \
    -t "$image" -f "$ctx/Containerfile" "$ctx" >&2
fi
if [ ! -s "$out" ] || [ "$(cat "$out.id" 2>/dev/null)" != "$tag" ]; then
  mkdir -p "$(dirname "$out")"
  rm -f "$out"
  podman save --format docker-archive -o "$out" "$image" >&2
  echo "$tag" > "$out.id"
fi
echo "$image"
