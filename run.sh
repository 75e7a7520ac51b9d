#!/usr/bin/env bash
# One command from a fresh machine (Python 3.11 + pip) to a result:
#   bash run.sh          set up .venv, run the recipe (stages 0-5) on the mini corpus, print EER/minDCF
#   bash run.sh test     set up .venv the same way and run the test suite
# Extra arguments after "demo" go to the recipe, e.g. bash run.sh demo --stage 2
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
venv=${VENV:-$root/.venv}
mode=${1:-demo}
[ $# -gt 0 ] && shift

setup() {
  # Install once per requirements change; torch is pinned to the CPU wheel (requirements.txt).
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  local stamp="$venv/.wespeaker_mfcon_installed"
  local want
  want=$(cat requirements.txt requirements-test.txt requirements-docs.txt setup.py | sha1sum \
    | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check -r requirements-test.txt
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e .
    echo "$want" > "$stamp"
  fi
  export PATH="$venv/bin:$PATH"
}

case "$mode" in
  demo)
    setup
    cd examples/voxceleb/v2_mfcon
    bash run.sh --stage 0 --stop_stage 5 "$@"
    ;;
  test)
    setup
    python -m pytest -q tests "$@"
    ;;
  *)
    echo "usage: bash run.sh [demo [recipe options] | test [pytest options]]" >&2
    exit 2
    ;;
esac
