#!/usr/bin/env bash
# Parse "--name value" / "--name=value" into shell variables that the sourcing script
# has already defined (Kaldi convention). Source it after setting defaults:
#   stage=0; nj=4; . tools/parse_options.sh
# "--help" prints $help_message (if set) and the current values, then exits 0.
# Dashes in names map to underscores (--stop-stage == --stop_stage).

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      [ -n "${help_message:-}" ] && printf '%s\n' "$help_message"
      echo "Options (current values):"
      for _v in ${_options_list:-}; do printf '  --%s %s\n' "$_v" "${!_v}"; done
      exit 0 ;;
    --*=*)
      _name=${1%%=*}; _name=${_name#--}; _name=${_name//-/_}; _value=${1#*=}; shift ;;
    --*)
      _name=${1#--}; _name=${_name//-/_}
      if [ $# -lt 2 ]; then echo "$0: option --$_name needs a value" >&2; exit 1; fi
      _value=$2; shift 2 ;;
    *) break ;;
  esac
  if ! declare -p "$_name" >/dev/null 2>&1; then
    echo "$0: unknown option --$_name (see --help)" >&2; exit 1
  fi
  printf -v "$_name" '%s' "$_value"
done
unset _name _value _v
