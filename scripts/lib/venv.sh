# Shell functions scripts/test and scripts/demo share: finding Python and filling a virtualenv.
# Sourced, not run.

python_at_least() { # interpreter major minor
    "$1" -c "import sys; sys.exit(0 if sys.version_info >= ($2, $3) else 1)" 2>/dev/null
}

# A Python >= 3.13 (what Home Assistant 2025.4 and its test harness need), SBMS_PYTHON first.
find_python313() {
    local candidate
    if [[ -n "${SBMS_PYTHON:-}" ]]; then
        if python_at_least "$SBMS_PYTHON" 3 13; then
            echo "$SBMS_PYTHON"
            return 0
        fi
        echo "SBMS_PYTHON=$SBMS_PYTHON is not a Python >= 3.13" >&2
        return 1
    fi
    for candidate in /root/.pyenv/versions/3.13.0/bin/python3 python3.13 python3.14 python3.15 \
        python3; do
        if command -v "$candidate" >/dev/null 2>&1 && python_at_least "$candidate" 3 13; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# Stamp = hash of everything that decides the venv's contents.
requirements_stamp() { # interpreter files...
    local interpreter="$1"
    shift
    {
        "$interpreter" -c 'import sys; print(sys.version)'
        cat "$@"
    } | sha256sum | cut -d' ' -f1
}

# pip install into a venv through uv (github.com/astral-sh/uv: it resolves and downloads in
# parallel and links from its cache; a Home Assistant tree installs in about a minute instead of
# three), installed into the venv itself by pip; plain pip when uv cannot be had.
venv_install() { # venv-dir pip-arguments...
    local venv="$1"
    shift
    if [[ ! -x "$venv/bin/uv" ]]; then
        "$venv/bin/python" -m pip install --quiet uv >/dev/null 2>&1 || true
    fi
    if [[ -x "$venv/bin/uv" ]]; then
        "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" "$@"
    else
        "$venv/bin/python" -m pip install --quiet "$@"
    fi
}

# Make `venv` from `interpreter` with `requirements` and this checkout (editable), unless its
# stamp says it already holds exactly that. A half-installed venv never gets a stamp.
ensure_venv() { # venv-dir interpreter requirements-file
    local venv="$1" interpreter="$2" requirements="$3"
    local stamp_file="$venv/.sbms-requirements-stamp"
    local wanted
    wanted="$(requirements_stamp "$interpreter" "$requirements" requirements/agent.txt \
        pyproject.toml)" || return
    if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$wanted" ]]; then
        echo "    $venv is up to date"
        return 0
    fi
    # Every command ends in "|| return": callers run this in an "||" context, where bash
    # ignores set -e.
    if [[ ! -x "$venv/bin/python" ]]; then
        "$interpreter" -m venv "$venv" || return
    fi
    rm -f "$stamp_file"
    venv_install "$venv" -r "$requirements" || return
    venv_install "$venv" --no-deps -e . || return
    echo "$wanted" >"$stamp_file"
}
