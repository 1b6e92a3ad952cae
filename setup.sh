#!/usr/bin/env bash
# One-step set-up on a fresh machine: Graphviz's `dot`, the CPU build of torch, and nasir
# (editable, with test tools). Safe to rerun; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v dot >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq graphviz >/dev/null || { apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; }
    else
        echo "setup.sh: Graphviz 'dot' is missing; install it (e.g. apt-get install graphviz) for 'nasir render'" >&2
    fi
fi
python -c "import torch" 2>/dev/null || python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev]"
