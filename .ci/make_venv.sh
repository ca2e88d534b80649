#!/usr/bin/env bash
# Create the project's virtual environment with Python 3.10 (Lava's limit) and install the project into it.
set -euo pipefail
venv="${1:-.venv}"
find_python310() {
    local c
    for c in python3.10 "$(command -v pyenv >/dev/null 2>&1 && echo "$(pyenv root)")/versions/"3.10*/bin/python3.10 \
             "$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
        [ -n "$c" ] || continue
        if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
            echo "$c"; return 0
        fi
    done
    return 1
}
if [ ! -x "$venv/bin/python" ]; then
    if ! py=$(find_python310); then
        echo "error: no working Python 3.10 interpreter found (looked for 'python3.10' on PATH and" \
             "'\$(pyenv root)/versions/3.10*/bin/python3.10'); Lava 0.10 needs Python 3.10 — install it" \
             "(e.g. 'pyenv install 3.10') and run make again." >&2
        exit 1
    fi
    echo "creating $venv with $py"
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip wheel
"$venv/bin/python" -m pip install -q -e ".[dev]"
