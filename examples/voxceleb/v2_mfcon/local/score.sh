#!/usr/bin/env bash
# Stage 4: cosine scoring (cohort-mean subtracted), AS-norm/S-norm, EER/minDCF, DET plot.
#
#   local/score.sh --exp_dir exp/mfcon [--data data] [--trials "vox1_O vox1_E"] \
#                  [--score_norm_method asnorm] [--top_n 300] \
#                  [--cohort_scp emb/xvector.scp --cohort_utt2spk other/utt2spk]
#
# Reads  $exp_dir/embeddings/{test,train}/xvector.scp, $data/train/utt2spk (the cohort: the
#        training speakers; --cohort_scp/--cohort_utt2spk give another, e.g. embeddings that
#        extract.sh wrote for speakers the model was not trained on),
#        $data/test/trials/<name>.kaldi for every name in $trials (default: all *.kaldi there;
#        an entry that is an existing file is used as it is; resolved in Python).
# Writes $exp_dir/scores/<name>.score, <name>.<method>.score, *.result, results.json, det.png.
set -euo pipefail

exp_dir=
data=data
trials=
score_norm_method=asnorm
top_n=300
cohort_scp=
cohort_utt2spk=

help_message="Usage: $0 --exp_dir DIR [--data data] [--trials \"name ...\"] [--score_norm_method asnorm|snorm] [--top_n 300] [--cohort_scp F --cohort_utt2spk F]"
_options_list="exp_dir data trials score_norm_method top_n cohort_scp cohort_utt2spk"
. tools/parse_options.sh

if [ -z "$exp_dir" ]; then echo "$0: --exp_dir is required" >&2; echo "$help_message" >&2; exit 1; fi
case "$score_norm_method" in
  asnorm|snorm) ;;
  *) echo "$0: --score_norm_method must be asnorm or snorm, got '$score_norm_method'" >&2; exit 1 ;;
esac

eval_scp=$exp_dir/embeddings/test/xvector.scp
cohort_scp=${cohort_scp:-$exp_dir/embeddings/train/xvector.scp}
utt2spk=${cohort_utt2spk:-$data/train/utt2spk}
score_dir=$exp_dir/scores
for f in "$eval_scp" "$cohort_scp" "$utt2spk"; do
  [ -f "$f" ] || { echo "$0: missing $f (run the earlier stages first)" >&2; exit 1; }
done

# The trial lists: --trials (names of $data/test/trials/NAME.kaldi or trial files; default:
# every list there), resolved by the Python entry points (scoring/trials.py).
lists=(--data "$data")
# shellcheck disable=SC2206  # trials is a list of names
[ -z "$trials" ] || lists+=(--trials $trials)

echo "$0: scoring the trial lists of $data${trials:+ ($trials)} -> $score_dir"
python -m wespeaker_mfcon.bin.score \
  --eval_scp "$eval_scp" --cohort_scp "$cohort_scp" "${lists[@]}" --out_dir "$score_dir"

python -m wespeaker_mfcon.bin.score_norm \
  --score_norm_method "$score_norm_method" --top_n "$top_n" \
  --eval_scp "$eval_scp" --cohort_scp "$cohort_scp" --cohort_utt2spk "$utt2spk" \
  "${lists[@]}" --out_dir "$score_dir"

python -m wespeaker_mfcon.bin.compute_metrics "${lists[@]}" \
  --systems cosine "$score_norm_method" --out_dir "$score_dir"
