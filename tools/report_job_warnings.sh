#!/usr/bin/env bash
# Tell the console about the warnings that parallel jobs left in their logs.
#   tools/report_job_warnings.sh [--name PROG] [--show N] LOG...
# Counts the Python logging warnings ("HH:MM:SS WARNING message", utils/cli.py setup_logging)
# in the logs and prints to stderr the count, the first N (default 5) warning lines and the
# logs that hold them. Prints nothing when there are none. Always exits 0. Called by
# tools/run_jobs.sh (so make_fbank.sh and extract.sh) once all jobs have finished.
name=$(basename "$0")
show=5
while [ $# -gt 0 ]; do
  case $1 in
    --name) name=$2; shift 2 ;;
    --show) show=$2; shift 2 ;;
    *) break ;;
  esac
done

# tqdm redraws with '\r' and may leave a bar in front of a log line: split on '\r' and match
# the timestamp anywhere in the line.
pattern='[0-9][0-9]:[0-9][0-9]:[0-9][0-9] WARNING .*'
total=0
logs=()
for log in "$@"; do
  [ -f "$log" ] || continue
  n=$(tr '\r' '\n' < "$log" | grep -c -- "$pattern")
  [ "$n" -gt 0 ] || continue
  total=$((total + n))
  logs+=("$log ($n)")
done
[ "$total" -gt 0 ] || exit 0

if [ "$total" -eq 1 ]; then what="1 warning"; else what="$total warnings"; fi
if [ "$total" -gt "$show" ]; then first=", the first $show"; else first=""; fi
echo "$name: $what in the job logs$first:" >&2
for log in "$@"; do
  [ -f "$log" ] && tr '\r' '\n' < "$log" | grep -o -- "$pattern"
done | head -n "$show" | sed 's/^/    /' >&2
list=$(printf '%s, ' "${logs[@]}")
echo "$name: by log: ${list%, }" >&2
exit 0
