# shellcheck shell=bash
# Sourced by scripts/test and scripts/example (not run on its own).
#
# Leaves the caller in the repo root with .venv/bin first on PATH and the project installed
# editable with its dev extra. .venv is created if missing; `pip install -e '.[dev]'` runs only
# when pyproject.toml differs from the one last installed (its sha256 is kept in a stamp file
# inside .venv), so running twice is cheap and safe.

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root" || exit 1

venv="$repo_root/.venv"
stamp="$venv/.trio-beam-pyproject.sha256"

if ! "$venv/bin/python" -c '' 2>/dev/null; then
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "setup: trio-beam needs python3 >= 3.11 on PATH; found: $(python3 --version 2>&1)" >&2
        exit 1
    fi
    echo "setup: creating .venv with $(python3 --version)" >&2
    python3 -m venv --clear "$venv"
fi

want="$("$venv/bin/python" -c \
    'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    echo "setup: installing trio-beam[dev] into .venv (pyproject.toml is new or changed)" >&2
    "$venv/bin/python" -m pip install --quiet --editable '.[dev]'
    # Written only after a successful install, so a failed one is retried next time.
    printf '%s\n' "$want" > "$stamp.tmp"
    mv "$stamp.tmp" "$stamp"
fi

export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"

# The official Phoenix JavaScript clients (tests drive them from Node): `npm ci` from the lock
# file, again only when package-lock.json changed. Without npm, the tests that need these
# clients skip (or fail when BEAM_REQUIRE_BROWSER=1, as in CI).
if [[ -f package-lock.json ]] && command -v npm >/dev/null 2>&1; then
    npm_want="$(sha256sum package-lock.json | cut -d' ' -f1)"
    npm_stamp="node_modules/.trio-beam-lock.sha256"
    if [[ "$npm_want" != "$(cat "$npm_stamp" 2>/dev/null || true)" ]]; then
        echo "setup: installing the JavaScript clients (npm ci)" >&2
        npm ci --no-audit --no-fund --loglevel=error >&2
        printf '%s\n' "$npm_want" > "$npm_stamp"
    fi
fi
