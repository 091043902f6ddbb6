#!/usr/bin/env bash
# Set up and run the benchmarks: benchmarks/run.sh [run.py options]
# (--quick for a smaller run that leaves RESULTS.md alone; -h for the rest).
#
# Needs Python 3.11+, Node 18+ with npm, and taskset (util-linux). Installs
# the package into .venv like scripts/test, the Node packages into
# benchmarks/node_modules and the Python peers into a venv under $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -c "import webpy_socketio" 2>/dev/null || .venv/bin/python -m pip install -q -e .
exec .venv/bin/python benchmarks/run.py "$@"
