#!/usr/bin/env bash
# Stage 7: score calibration (plain and QMF logistic regression) trained on trials drawn from
# the training set, or from a held-out set with --cal_data; Cllr, min Cllr, actual DCF next to
# EER/minDCF (run after stage 4).
#
#   local/calibrate.sh --exp_dir exp/mfcon [--data data] [--trials "vox1_O vox1_E"] \
#                      [--score_norm_method asnorm] [--top_n 300] [--num_trials 20000] \
#                      [--seed 0] [--p_train 0.5] [--calibrate_opts "--qmf_features score ..."] \
#                      [--cal_data data/dev [--cal_embeddings SCP] [--cal_trials NAME]]
#
# Reads  $exp_dir/embeddings/{train,test}/xvector.scp, $data/{train,test}/utt2dur,
#        $data/train/utt2spk, $exp_dir/scores/<name>.score and <name>.<method>.score for every
#        name in $trials (default: all $data/test/trials/*.kaldi).
#        With --cal_data DIR (held-out speakers): $cal_embeddings (default
#        $exp_dir/embeddings/$(basename DIR)/xvector.scp, where stage 3 would put it),
#        DIR/utt2dur and DIR/utt2spk (trials drawn from it) or DIR/trials/$cal_trials.kaldi.
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
cal_data=
cal_embeddings=
cal_trials=

help_message="Usage: $0 --exp_dir DIR [--data data] [--trials \"name ...\"] [--score_norm_method asnorm|snorm] [--top_n 300] [--num_trials 20000] [--seed 0] [--p_train 0.5] [--calibrate_opts '...'] [--cal_data DIR [--cal_embeddings SCP] [--cal_trials NAME]]"
_options_list="exp_dir data trials score_norm_method top_n num_trials seed p_train calibrate_opts cal_data cal_embeddings cal_trials"
. tools/parse_options.sh

if [ -z "$exp_dir" ]; then echo "$0: --exp_dir is required" >&2; echo "$help_message" >&2; exit 1; fi
for f in "$exp_dir/embeddings/train/xvector.scp" "$exp_dir/embeddings/test/xvector.scp" \
         "$data/train/utt2spk"; do
  [ -f "$f" ] || { echo "$0: missing $f (run stages 0-4 first)" >&2; exit 1; }
done

lists=()
# shellcheck disable=SC2206  # trials is a list of names; default: every list of $data
[ -z "$trials" ] || lists=(--trials $trials)

cal_args=()
source_desc="$num_trials trials from $data/train"
if [ -n "$cal_data" ]; then
  cal_name=$(basename "$cal_data")
  [ -n "$cal_embeddings" ] || cal_embeddings="$exp_dir/embeddings/$cal_name/xvector.scp"
  if [ ! -f "$cal_embeddings" ]; then
    echo "$0: missing $cal_embeddings (extract the embeddings of $cal_data as stage 3 does:" \
      "bash extract.sh --model $exp_dir/models/avg_model.pt --feats_scp $cal_data/feats.scp" \
      "--out_dir $exp_dir/embeddings/$cal_name; or give --cal_embeddings)" >&2
    exit 1
  fi
  cal_args=(--cal_data "$cal_data" --cal_embeddings "$cal_embeddings")
  source_desc="$num_trials trials from $cal_data (held out)"
  if [ -n "$cal_trials" ]; then
    cal_args+=(--cal_trials "$cal_trials")
    source_desc="the trials of $cal_data/trials/${cal_trials%.kaldi}.kaldi (held out)"
  fi
elif [ -n "$cal_embeddings$cal_trials" ]; then
  echo "$0: --cal_embeddings and --cal_trials need --cal_data" >&2; exit 1
fi

echo "$0: calibrating the trial lists of $data${trials:+ ($trials)} with $source_desc" \
  "-> $exp_dir/calibration"
# shellcheck disable=SC2086  # calibrate_opts is a list of options
python -m wespeaker_mfcon.bin.calibrate --exp_dir "$exp_dir" --data "$data" "${lists[@]}" \
  --score_norm_method "$score_norm_method" --top_n "$top_n" --num_trials "$num_trials" \
  --seed "$seed" --p_train "$p_train" "${cal_args[@]}" $calibrate_opts
