#!/usr/bin/env bash
# Speaker embeddings for any list of wavs (or stage-1 features), from a .pt or an .onnx model.
#   bash extract.sh --model exp/E/models/avg_model.pt --wav_scp my_wavs.scp --out_dir emb/ --nj 2
#   bash extract.sh --model exp/E/models/avg_model.onnx --wav_scp my_wavs.scp --out_dir emb/
# Writes OUT/xvector.ark and OUT/xvector.scp (kaldiio). wav.scp lines are "utt /path/to.wav".
# Each job sorts its utterances by length and embeds them in zero-padded batches of at most
# --batch_size utterances and --max_frames padded frames; the padding is masked, so an embedding
# equals the utterance's alone (--batch_size 1: one at a time; the default is 16 for a .pt and
# 1 for an .onnx, as ONNX Runtime on CPU was not faster batched). Models that cannot mask (ECAPA,
# an .onnx without a lengths input) batch only equal lengths.
# Job logs are OUT/log/extract.N.log; run_jobs.sh prints how many warnings they hold (e.g.
# resampled or down-mixed wavs), the first few, and which logs hold them.
. ./path.sh || exit 1
set -euo pipefail

model=""
wav_scp=""
feats_scp=""
out_dir=""
nj=2
gpus=""          # e.g. "0,1": job j uses GPU (j-1) mod #gpus (.pt models)
batch_size=""    # utterances per batch at most (empty: 16 for a .pt, 1 for an .onnx)
max_frames=20000 # padded frames per batch at most (batch size x longest utterance)
help_message="Usage: $0 --model X.pt|X.onnx (--wav_scp FILE | --feats_scp FILE) --out_dir DIR
  [--nj N] [--gpus 0,1] [--batch_size N] [--max_frames N]"
. tools/parse_options.sh

if [ -z "$model" ] || [ -z "$out_dir" ] || [ -z "${wav_scp}${feats_scp}" ]; then
  printf '%s\n' "$help_message" >&2; exit 1
fi
if [ -n "$wav_scp" ]; then kind=wav_scp; list=$wav_scp; else kind=feats_scp; list=$feats_scp; fi
[ -f "$list" ] || { echo "$0: error: $list: no such file" >&2; exit 1; }
[ -f "$model" ] || { echo "$0: error: $model: no such model" >&2; exit 1; }
for opt in nj batch_size max_frames; do
  [ "$opt" != batch_size ] || [ -n "$batch_size" ] || continue
  [[ "${!opt}" =~ ^[1-9][0-9]*$ ]] || {
    echo "$0: error: --$opt must be a positive integer, got '${!opt}'" >&2; exit 1; }
done

num=$(grep -c '[^[:space:]]' "$list" || true)
[ "$num" -gt 0 ] || { echo "$0: error: $list is empty" >&2; exit 1; }
[ "$nj" -le "$num" ] || nj=$num
split_dir=$out_dir/split; mkdir -p "$split_dir" "$out_dir/log"
rm -f "$out_dir"/xvector.scp "$split_dir"/*
parts=(); for j in $(seq 1 "$nj"); do parts+=("$split_dir/$kind.$j"); done
python tools/split_scp.py "$list" "${parts[@]}"

device_args=""
[ -z "$gpus" ] || device_args="--device cuda --gpu_list ${gpus}"
tools/run_jobs.sh JOB=1:$nj "$out_dir/log/extract.JOB.log" \
  python -m wespeaker_mfcon.bin.extract --model "$model" --$kind "$split_dir/$kind.JOB" \
  --out_dir "$out_dir" --name xvector.JOB ${batch_size:+--batch_size $batch_size} \
  --max_frames "$max_frames" --job JOB $device_args
xvector_parts=(); for j in $(seq 1 "$nj"); do xvector_parts+=("$out_dir/xvector.$j.scp"); done
# written atomically and last: marks extraction complete
python tools/merge_tables.py --expect "$num" "$out_dir/xvector.scp" "${xvector_parts[@]}"
echo "$0: $(wc -l < "$out_dir/xvector.scp") embeddings in $out_dir/xvector.scp"
