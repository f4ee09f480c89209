#!/usr/bin/env bash
# Build the throwaway venv extract.py runs in for one Dify release: Python
# 3.12 with exactly the versions the release's api/uv.lock pins for what
# api/configs imports (pydantic, pydantic-core, pydantic-settings, ...).
#
#   scripts/dify-contract/make-venv.sh DIFY_GIT COMMIT VENV_DIR [PYTHON]
#
# PYTHON defaults to ~/.pyenv/versions/3.12.1/bin/python, else python3.12.
set -euo pipefail

dify_git=$1
commit=$2
venv=$3
python=${4:-}
if [[ -z "$python" ]]; then
  if [[ -x "$HOME/.pyenv/versions/3.12.1/bin/python" ]]; then
    python=$HOME/.pyenv/versions/3.12.1/bin/python
  else
    python=python3.12
  fi
fi

lock=$(mktemp)
trap 'rm -f "$lock"' EXIT
git -C "$dify_git" show "$commit:api/uv.lock" > "$lock"
pin() {
  # the version uv.lock pins for package $1
  awk -v want="$1" '
    /^\[\[package\]\]/ { name = "" }
    /^name = / { gsub(/"/, "", $3); name = $3 }
    /^version = / && name == want && !found { gsub(/"/, "", $3); print $3; found = 1 }' "$lock"
}

reqs=()
for pkg in pydantic pydantic-core pydantic-settings pydantic-extra-types typing-extensions typing-inspection \
           annotated-types python-dotenv httpx; do
  version=$(pin "$pkg")
  [[ -n "$version" ]] && reqs+=("$pkg==$version")
done
# api/configs imports holo_search_sdk's type aliases in some releases
if git -C "$dify_git" grep -q "holo_search_sdk" "$commit" -- api/configs; then
  reqs+=("holo-search-sdk==$(pin holo-search-sdk)")
fi

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${reqs[@]}" "pyyaml>=6,<7"
echo "$venv: ${reqs[*]}"
