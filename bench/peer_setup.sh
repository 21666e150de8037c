#!/usr/bin/env bash
# Creates the virtual environment of the peer benchmark (bench/peer_model_garden.py):
# TF Model Garden (tf-models-official 2.20) with its own TensorFlow 2.20, kept apart from
# this project, which never depends on it.
#
#     bench/peer_setup.sh                  # venv in bench/.peer-venv
#     PEER_VENV=/some/dir bench/peer_setup.sh
#     PEER_PYTHON=$(bench/peer_setup.sh)   # stdout is only the venv's python path
#
# Idempotent: a stamp file in the venv records the installed pins; when it matches, nothing
# is installed again. The first run takes about 2 minutes and 3.3 GB. pip's output goes to
# stderr so that stdout stays the python path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PEER_VENV:-$here/.peer-venv}"
pins=("tf-models-official==2.20.*" "tensorflow==2.20.*" "tensorflow-text==2.20.*")
stamp="$venv/.peer-pins"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "${pins[*]}" ]]; then
    echo "peer venv up to date: $venv" >&2
else
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "creating peer venv: $venv" >&2
        python3.11 -m venv "$venv"
    fi
    echo "installing ${pins[*]}" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
    # Written only after a successful install, so an interrupted run installs again.
    printf '%s\n' "${pins[*]}" >"$stamp"
fi

echo "$venv/bin/python"
