#!/usr/bin/env bash
# Multi-seed comparison of training variants (MFCon vs the plain MFA-Conformer, ablations).
#
#   bash local/compare_mfcon.sh --variants conf/compare/mfcon_vs_baseline.yaml --seeds "1 2 3"
#   bash local/compare_mfcon.sh --variants conf/compare/ablations.yaml --out exp/ablations \
#     --train_opts "--num_epochs 4"
#   bash local/compare_mfcon.sh --variants conf/compare/mfcon_lambda.yaml --seeds "1 2 3" \
#     --prepare_mini true --mini_opts "--num_test_spk 80 --num_trials 7680" \
#     --data data_t80 --out exp/compare_t80          # the main table of docs/experiments.md
#   bash local/compare_mfcon.sh --variants conf/compare/mfcon_lambda.yaml --seeds "1 2 3" \
#     --data data_h80 --out exp/compare_h80 --models_from exp/compare_t80   # held-out speakers
#
# Run from the recipe dir after stages 0-1 (data prep, fbank) for --data, or with
# --prepare_mini true, which runs them on the mini corpus first. For every variant V
# and seed S: run.sh stages 2-4 into OUT/V/seedS with train options "--seed S <V's overrides>
# <--train_opts>", then analysis/block_eer.py (EER of every Conformer block) on it. Finally
# analysis/summarize_comparison.py writes OUT/comparison.{md,json} and OUT/block_eer.png.
# Resumable: a run whose scores/results.json exists is not trained again (its recorded
# train options must match), a run with block_eer.json is not re-analysed; an interrupted
# training resumes from its last checkpoint.
. ./path.sh || exit 1
set -euo pipefail

variants=conf/compare/mfcon_vs_baseline.yaml
seeds="1 2 3"
data=data
out=exp/compare
nj=2
num_avg=3
top_n=100
score_norm_method=asnorm
gpus=""              # passed to run.sh; empty = CPU
train_opts=""        # extra config overrides for every variant, e.g. "--num_epochs 4"
block_trials=""      # trial list (name in DATA/test/trials) for block EER; default: the first
prepare_mini=false   # true: make the mini corpus + fbank in --data first (run.sh stages 0-1)
mini_opts=""         # options of tools/make_mini_corpus.py for --prepare_mini true
models_from=""       # reuse the checkpoints of MODELS_FROM/V/seedS (same options; hard links)
                     # instead of training: scores models trained once on another test set

help_message="Usage: $0 [--variants conf/compare/X.yaml] [--seeds \"1 2 3\"] [--data data]
  [--out exp/compare] [--nj 2] [--num_avg 3] [--top_n 100] [--score_norm_method asnorm|snorm]
  [--gpus 0,1] [--train_opts '--num_epochs 4'] [--block_trials NAME]
  [--prepare_mini true --mini_opts '--num_test_spk 80 --num_trials 7680'] [--models_from OUT0]
Trains every variant of the variant file with every seed (run.sh stages 2-4), computes the EER
of every block (OUT/V/seedS/block_eer.json) and summarizes into OUT/comparison.md,
OUT/comparison.json and OUT/block_eer.png. Needs stages 0-1 done for --data, or
--prepare_mini true to run them on the mini corpus first. --models_from OUT0 scores the
models of an earlier comparison OUT0 (same variants, seeds and train data) on --data."
_options_list="variants seeds data out nj num_avg top_n score_norm_method gpus train_opts block_trials
  prepare_mini mini_opts models_from"
. tools/parse_options.sh

[ -f "$variants" ] || { echo "$0: error: $variants: no such variant file" >&2; exit 1; }
[ -n "${seeds// /}" ] || { echo "$0: error: --seeds is empty" >&2; exit 1; }
for s in $seeds; do
  [[ "$s" =~ ^[0-9]+$ ]] || { echo "$0: error: seed '$s' is not a non-negative integer" >&2; exit 1; }
done
case "$prepare_mini" in
  true|false) ;;
  *) echo "$0: error: --prepare_mini must be true or false, got '$prepare_mini'" >&2; exit 1 ;;
esac
if [ "$prepare_mini" = true ] && \
   { [ ! -f "$data/train/feats.scp" ] || [ ! -f "$data/test/feats.scp" ]; }; then
  echo "$0: preparing the mini corpus in $data (run.sh stages 0-1, mini_opts '$mini_opts')"
  bash run.sh --stage 0 --stop_stage 1 --data "$data" --nj "$nj" --mini_opts "$mini_opts" < /dev/null
fi
for f in "$data/train/feats.scp" "$data/test/feats.scp"; do
  [ -f "$f" ] || { echo "$0: error: missing $f (run 'bash run.sh --stage 0 --stop_stage 1 --data $data' first, or use --prepare_mini true)" >&2; exit 1; }
done
if [ -z "$block_trials" ]; then
  block_trials=$(ls "$data"/test/trials/*.kaldi 2>/dev/null | head -n 1 || true)
  [ -n "$block_trials" ] || { echo "$0: error: no trial lists in $data/test/trials/" >&2; exit 1; }
elif [ ! -f "$block_trials" ]; then
  block_trials=$data/test/trials/${block_trials%.kaldi}.kaldi
fi
[ -f "$block_trials" ] || { echo "$0: error: no trial list $block_trials" >&2; exit 1; }

# reuse_models SRC DST OPTS: hard-link SRC's checkpoints into DST, so that run.sh stage 2 resumes
# at the last epoch (nothing to train), averages and goes on to scoring.
reuse_models() {
  if [ ! -f "$1/compare_opts" ] || [ "$(cat "$1/compare_opts")" != "$3" ]; then
    echo "$0: error: --models_from: $1 has no run trained with '$3'" >&2; exit 1
  fi
  if [ ! -d "$2/models" ]; then
    cp -al "$1/models" "$2/models" 2>/dev/null || cp -a "$1/models" "$2/models"
    rm -f "$2/models/avg_model.pt"
  fi
}

# "name|config|overrides" lines; checks names, configs and override keys up front.
variant_lines=$(python -m wespeaker_mfcon.analysis.summarize_comparison --list_variants "$variants")
mapfile -t lines <<< "$variant_lines"
baseline=""
runs=()
for line in "${lines[@]}"; do
  IFS='|' read -r name config overrides <<< "$line"
  [ -n "$baseline" ] || baseline=$name
  [ "$name" != baseline ] || baseline=baseline
  for s in $seeds; do
    dir=$out/$name/seed$s
    opts="--seed $s $overrides $train_opts"
    read -ra words <<< "$opts"; opts="${words[*]}"   # squeeze blanks (no globbing)
    if [ -f "$dir/scores/results.json" ]; then
      if [ -f "$dir/compare_opts" ] && [ "$(cat "$dir/compare_opts")" != "$config $opts" ]; then
        echo "$0: error: $dir was trained with '$(cat "$dir/compare_opts")', now asked for" \
             "'$config $opts'; remove $dir or use another --out" >&2
        exit 1
      fi
      echo "$0: $name/seed$s: done already ($dir/scores/results.json)"
    else
      mkdir -p "$dir"
      if [ -n "$models_from" ]; then
        echo "$0: $name/seed$s: scoring the models of $models_from/$name/seed$s -> $dir"
        reuse_models "$models_from/$name/seed$s" "$dir" "$config $opts"
      else
        echo "$0: $name/seed$s: training $config with '$opts' -> $dir"
      fi
      echo "$config $opts" > "$dir/compare_opts"
      bash run.sh --stage 2 --stop_stage 4 --config "$config" --exp_dir "$dir" --data "$data" \
        --nj "$nj" --gpus "$gpus" --num_avg "$num_avg" --top_n "$top_n" \
        --score_norm_method "$score_norm_method" --train_opts "$opts" < /dev/null
    fi
    if [ ! -f "$dir/block_eer.json" ]; then
      if [ -n "$gpus" ]; then dev="cuda"; else dev="cpu"; fi
      CUDA_VISIBLE_DEVICES=${gpus%%,*} python -m wespeaker_mfcon.analysis.block_eer \
        --exp_dir "$dir" --checkpoint "$dir/models/avg_model.pt" --device $dev \
        --feats_scp "$data/test/feats.scp" --trials "$block_trials" \
        --out "$dir/block_eer.json" --plot "$dir/block_eer.png"
    fi
    runs+=("$name/seed$s=$dir")
  done
done

python -m wespeaker_mfcon.analysis.summarize_comparison --runs "${runs[@]}" --baseline "$baseline" \
  --out_dir "$out"
echo "$0: comparison -> $out/comparison.md"
