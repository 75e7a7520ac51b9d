#!/usr/bin/env bash
# The MFCon weighting study (docs/experiments.md, weighting without tuning lambda): every setting,
# every variant, every seed, then one table with each scheme against the baseline and the
# oracle (the best constant lambda of that setting) and the verdict.
#   bash local/weighting_study.sh                        # all four settings, seeds 1-3
#   bash local/weighting_study.sh --settings "s200" --stage 2   # re-summarize one setting
# Settings (all 80 test speakers, 7680 trials; 12 epochs; data made by --prepare_mini):
#   t80      40 train speakers, small model, fbank      mfcon_lambda + weighting + weighting_blocks
#   t80_aug  40 train speakers, small model, raw audio + augmentation    mfcon_weighting_aug
#   s200     200 train speakers (6 utterances each), small model, fbank  mfcon_weighting_scale
#   medium   40 train speakers, 6 blocks of d 144, fbank                 mfcon_weighting_scale
# Stage 1 trains and scores (local/compare_mfcon.sh into exp/compare_<setting>; resumable),
# stage 2 summarizes every finished run of each setting into OUT/<setting>/comparison.{md,json}
# and writes OUT/table.md (analysis/weighting_table.py).
. ./path.sh || exit 1
set -euo pipefail

stage=1
stop_stage=2
settings="t80 t80_aug s200 medium"
seeds="1 2 3"
out=exp/weighting_study
nj=2

help_message="Usage: $0 [--stage 1|2] [--stop_stage 1|2] [--settings 't80 t80_aug s200 medium']
  [--seeds '1 2 3'] [--out exp/weighting_study] [--nj 2]
Stage 1 trains every variant of every setting (local/compare_mfcon.sh), stage 2 writes
OUT/<setting>/comparison.md and OUT/table.md."
_options_list="stage stop_stage settings seeds out nj"
. tools/parse_options.sh

t80_mini="--num_test_spk 80 --num_trials 7680"
s200_mini="--num_train_spk 200 --utts_per_session 2 --num_test_spk 80 --num_trials 7680"
medium_model="--model_args.num_blocks 6 --model_args.output_size 144"

# setting -> "data|mini_opts|train_opts|baseline variant|variant files" and its display name
declare -A spec=(
  [t80]="data_t80|$t80_mini||baseline|mfcon_lambda mfcon_weighting mfcon_weighting_blocks"
  [t80_aug]="data_t80|$t80_mini||aug_baseline|mfcon_weighting_aug"
  [s200]="data_s200|$s200_mini||baseline|mfcon_weighting_scale"
  [medium]="data_t80|$t80_mini|$medium_model|baseline|mfcon_weighting_scale"
)
declare -A title=(
  [t80]="40 train speakers, small model, fbank"
  [t80_aug]="40 train speakers, small model, raw audio + augmentation"
  [s200]="200 train speakers, small model, fbank"
  [medium]="40 train speakers, medium model (6 x d 144), fbank"
)
for s in $settings; do
  [ -n "${spec[$s]:-}" ] || { echo "$0: error: unknown setting '$s' (t80 t80_aug s200 medium)" >&2; exit 1; }
done

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  for s in $settings; do
    IFS='|' read -r data mini train _ files <<< "${spec[$s]}"
    for f in $files; do
      echo "$0: setting $s, conf/compare/$f.yaml"
      bash local/compare_mfcon.sh --variants conf/compare/$f.yaml --seeds "$seeds" --nj "$nj" \
        --prepare_mini true --mini_opts "$mini" --data "$data" --out exp/compare_$s \
        --train_opts "$train"
    done
  done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  table_args=()
  for s in $settings; do
    runs=()
    for seed in $seeds; do
      for dir in exp/compare_$s/*/seed$seed; do
        [ -f "$dir/scores/results.json" ] || continue
        v=${dir%/seed$seed}; runs+=("${v##*/}/seed$seed=$dir")
      done
    done
    [ ${#runs[@]} -gt 0 ] || { echo "$0: setting $s: no finished runs in exp/compare_$s, skipped"; continue; }
    IFS='|' read -r _ _ _ base _ <<< "${spec[$s]}"
    python -m wespeaker_mfcon.analysis.summarize_comparison --runs "${runs[@]}" \
      --baseline "$base" --out_dir "$out/$s"
    table_args+=(--setting "${title[$s]}=$out/$s/comparison.json")
  done
  [ ${#table_args[@]} -gt 0 ] || { echo "$0: error: no finished runs in any setting" >&2; exit 1; }
  python -m wespeaker_mfcon.analysis.weighting_table "${table_args[@]}" --out "$out/table.md" \
    --plot "$out/block_eer.png"
  echo "$0: per setting $out/<setting>/comparison.md, all settings $out/table.md"
fi
