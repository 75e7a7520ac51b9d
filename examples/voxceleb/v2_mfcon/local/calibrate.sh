#!/usr/bin/env bash
# Stage 7: score calibration (plain and QMF logistic regression) trained on trials drawn from
# the training set; Cllr, min Cllr, actual DCF next to EER/minDCF (run after stage 4).
#
#   local/calibrate.sh --exp_dir exp/mfcon [--data data] [--trials "vox1_O vox1_E"] \
#                      [--score_norm_method asnorm] [--top_n 300] [--num_trials 20000] \
#                      [--seed 0] [--p_train 0.5] [--calibrate_opts "--qmf_features score ..."]
#
# Reads  $exp_dir/embeddings/{train,test}/xvector.scp, $data/{train,test}/utt2dur,
#        $data/train/utt2spk, $exp_dir/scores/<name>.score and <name>.<method>.score for every
#        name in $trials (default: all $data/test/trials/*.kaldi).
# Writes $exp_dir/calibration/{cosine,<method>}_{plain,qmf}.json, ablation.json,
#        $exp_dir/calibration.json (raw cosine, for `wespeaker-mfcon compare`),
#        $exp_dir/scores/<name>.<system>_{plain,qmf}.llr.score, results.json (merged).
set -euo pipefail

exp_dir=
data=data
trials=
score_norm_method=asnorm
top_n=300
num_trials=20000
seed=0
p_train=0.5
calibrate_opts=""

help_message="Usage: $0 --exp_dir DIR [--data data] [--trials \"name ...\"] [--score_norm_method asnorm|snorm] [--top_n 300] [--num_trials 20000] [--seed 0] [--p_train 0.5] [--calibrate_opts '...']"
_options_list="exp_dir data trials score_norm_method top_n num_trials seed p_train calibrate_opts"
. tools/parse_options.sh

if [ -z "$exp_dir" ]; then echo "$0: --exp_dir is required" >&2; echo "$help_message" >&2; exit 1; fi
for f in "$exp_dir/embeddings/train/xvector.scp" "$exp_dir/embeddings/test/xvector.scp" \
         "$data/train/utt2spk"; do
  [ -f "$f" ] || { echo "$0: missing $f (run stages 0-4 first)" >&2; exit 1; }
done

if [ -z "$trials" ]; then
  trials=$(ls "$data"/test/trials/*.kaldi 2>/dev/null | xargs -r -n1 basename | sed 's/\.kaldi$//' | tr '\n' ' ')
  [ -n "$trials" ] || { echo "$0: no trial lists in $data/test/trials/" >&2; exit 1; }
fi
names=()
for t in $trials; do
  n=$(basename "$t"); n=${n%.kaldi}
  [ -f "$exp_dir/scores/$n.score" ] || { echo "$0: missing $exp_dir/scores/$n.score (run stage 4 first)" >&2; exit 1; }
  names+=("$n")
done

echo "$0: calibrating ${names[*]} with $num_trials trials from $data/train -> $exp_dir/calibration"
# shellcheck disable=SC2086  # calibrate_opts is a list of options
python -m wespeaker_mfcon.bin.calibrate --exp_dir "$exp_dir" \
  --train_data "$data/train" --test_data "$data/test" --trials "${names[@]}" \
  --score_norm_method "$score_norm_method" --top_n "$top_n" --num_trials "$num_trials" \
  --seed "$seed" --p_train "$p_train" $calibrate_opts
