#!/usr/bin/env bash
# Print the names of the trial lists of a data dir: DATA/test/trials/NAME.kaldi -> NAME, one
# line, space-separated; an error if there are none.
#   tools/trial_names.sh data      ->  "vox1_O vox1_E vox1_H"
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DATA" >&2; exit 1; }
names=$({ ls "$1"/test/trials/*.kaldi 2>/dev/null || true; } | xargs -r -n1 basename |
        sed 's/\.kaldi$//' | tr '\n' ' ')
[ -n "$names" ] || { echo "$0: no trial lists in $1/test/trials/" >&2; exit 1; }
echo "${names% }"
