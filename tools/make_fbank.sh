#!/usr/bin/env bash
# Kaldi-style parallel fbank extraction (stage 1).
#
#   tools/make_fbank.sh [--nj 4] [--python python] <data_dir>
#
# Splits <data_dir>/wav.scp into nj parts, runs wespeaker_mfcon.bin.compute_fbank on each with
# tools/run_jobs.sh (logs: <data_dir>/log/fbank.JOB.log, arks: <data_dir>/fbank/), and
# merges the parts into <data_dir>/feats.scp and <data_dir>/utt2num_frames, sorted by key.
# Warnings in the logs (resampled or down-mixed files, ...) are counted and shown on stderr.
# feats.scp is written last, atomically (tools/merge_tables.py): a failed run leaves none.
# Re-running is cheap: if feats.scp exists and covers every utterance of wav.scp, nothing is done.
set -euo pipefail

nj=4
python=python
num_mel_bins=80
batch_size=4
help_message="Usage: $0 [options] <data_dir>
Compute ${num_mel_bins}-dim log-mel fbank for <data_dir>/wav.scp in parallel jobs.
Writes <data_dir>/{feats.scp,utt2num_frames}, arks in <data_dir>/fbank, logs in <data_dir>/log."
_options_list="nj python num_mel_bins batch_size"

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
. "$tools_dir/parse_options.sh"

if [ $# -ne 1 ]; then
  printf '%s\n' "$help_message" >&2
  exit 1
fi
data=$1
if [ ! -f "$data/wav.scp" ]; then
  echo "$0: error: $data/wav.scp: no such file" >&2
  exit 1
fi
if ! [[ "$nj" =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: error: --nj must be a positive integer, got '$nj'" >&2
  exit 1
fi
data=$(cd "$data" && pwd)
# The package is importable from this checkout even when it is not installed.
export PYTHONPATH="$(dirname "$tools_dir")${PYTHONPATH:+:$PYTHONPATH}"

num_utts=$(grep -c '[^[:space:]]' "$data/wav.scp" || true)
if [ "$num_utts" -eq 0 ]; then
  echo "$0: error: $data/wav.scp is empty" >&2
  exit 1
fi

# Skip when a previous run is complete: every wav.scp key is in feats.scp, every ark exists.
if [ -f "$data/feats.scp" ] && [ -f "$data/utt2num_frames" ]; then
  if awk 'NR == FNR { have[$1] = 1; next } NF && !($1 in have) { miss++ }
          END { exit(miss > 0) }' "$data/feats.scp" "$data/wav.scp" &&
     awk '{ l = $0; sub(/^[^ ]+ /, "", l); sub(/:[0-9]+$/, "", l); print l }' "$data/feats.scp" |
       sort -u | { ok=0; while IFS= read -r ark; do [ -f "$ark" ] || ok=1; done; exit $ok; }; then
    echo "$0: $data/feats.scp already covers all $num_utts utterances of wav.scp, skipping"
    exit 0
  fi
fi

fbankdir=$data/fbank
logdir=$data/log
# Nothing from an earlier (possibly failed or differently split) run may survive.
rm -f "$data/feats.scp" "$data/utt2num_frames"
mkdir -p "$fbankdir" "$logdir"
rm -f "$fbankdir"/raw_fbank.*.ark "$fbankdir"/raw_fbank.*.scp "$fbankdir"/utt2num_frames.* \
  "$fbankdir"/wav.*.scp "$logdir"/fbank.*.log

if [ "$nj" -gt "$num_utts" ]; then
  echo "$0: only $num_utts utterances, using --nj $num_utts"
  nj=$num_utts
fi
split_scps=()
for j in $(seq 1 "$nj"); do split_scps+=("$fbankdir/wav.$j.scp"); done
"$python" "$tools_dir/split_scp.py" "$data/wav.scp" "${split_scps[@]}"

echo "$0: computing fbank for $num_utts utterances of $data in $nj jobs (logs: $logdir)"
# run_jobs.sh reports the warnings of all jobs, then the tail of each failed job's log
if ! "$tools_dir/run_jobs.sh" JOB=1:"$nj" "$logdir/fbank.JOB.log" \
    "$python" -m wespeaker_mfcon.bin.compute_fbank --wav_scp "$fbankdir/wav.JOB.scp" \
    --ark "$fbankdir/raw_fbank.JOB.ark" --scp "$fbankdir/raw_fbank.JOB.scp" \
    --utt2num_frames "$fbankdir/utt2num_frames.JOB" --num_mel_bins "$num_mel_bins" \
    --batch_size "$batch_size" --num_threads 1; then
  echo "$0: error: fbank extraction failed, no feats.scp written" >&2
  exit 1
fi

frame_parts=(); scp_parts=()
for j in $(seq 1 "$nj"); do
  frame_parts+=("$fbankdir/utt2num_frames.$j"); scp_parts+=("$fbankdir/raw_fbank.$j.scp")
done
"$python" "$tools_dir/merge_tables.py" --sort --expect "$num_utts" "$data/utt2num_frames" \
  "${frame_parts[@]}"
# feats.scp last: its presence marks the stage complete
"$python" "$tools_dir/merge_tables.py" --sort --expect "$num_utts" "$data/feats.scp" \
  "${scp_parts[@]}"
rm -f "${split_scps[@]}"
echo "$0: wrote $data/feats.scp ($num_utts utterances)"
