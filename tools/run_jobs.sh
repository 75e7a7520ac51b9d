#!/usr/bin/env bash
# Run a command as N parallel jobs, Kaldi run.pl style; "JOB" in the log path and the command
# is replaced by the job number. When all have finished, the warnings in their logs are counted
# and shown (tools/report_job_warnings.sh); fails (listing each failed job's log tail) if any
# job fails.
#   tools/run_jobs.sh JOB=1:4 exp/log/extract.JOB.log python -m x --in split/JOB.scp
set -uo pipefail
if [ $# -lt 3 ] || [[ ! "$1" =~ ^JOB=1:([1-9][0-9]*)$ ]]; then
  echo "usage: $0 JOB=1:N LOG_WITH_JOB COMMAND..." >&2; exit 1
fi
nj=${BASH_REMATCH[1]}; log_pattern=$2; shift 2
tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
prog=$(basename "$0")
pids=(); logs=()
for j in $(seq 1 "$nj"); do
  log=${log_pattern//JOB/$j}
  logs+=("$log")
  mkdir -p "$(dirname "$log")"
  args=(); for a in "$@"; do args+=("${a//JOB/$j}"); done
  # one BLAS thread per job: the jobs themselves fill the cores
  { echo "# ${args[*]}"; OMP_NUM_THREADS=1 "${args[@]}"; } > "$log" 2>&1 &
  pids+=($!)
done
failed=()
for j in $(seq 1 "$nj"); do
  wait "${pids[$((j - 1))]}" || failed+=("$j")
done
"$tools_dir/report_job_warnings.sh" --name "$prog" "${logs[@]}"
for j in ${failed[@]+"${failed[@]}"}; do
  log=${logs[$((j - 1))]}
  echo "$prog: error: job $j of $nj failed, see $log; its last lines:" >&2
  tr '\r' '\n' < "$log" | grep -v '^[[:space:]]*$' | tail -n 4 | sed 's/^/    /' >&2
done
[ ${#failed[@]} -eq 0 ]
