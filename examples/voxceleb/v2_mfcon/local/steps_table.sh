#!/usr/bin/env bash
# The post-training steps over seeds, WeSpeaker-style: base, + AS-norm, + LM (stage 6),
# + QMF (stage 7), for the MFCon and the baseline configs (the table of docs/scoring.md).
#
#   bash local/steps_table.sh --data data_t80 --cal_data data_dev/test --seeds "1 2 3"
#
# Needs stages 0-1 done for --data and, if given, a held-out --cal_data dir with feats.scp
# (speakers in neither the training nor the test set). For every system S and seed N:
# run.sh stages 2-4 and 7 into OUT/S/seedN, stage 6 (LM) into OUT/S/seedN_lm, and stages 3-4
# and 7 of that; then analysis/steps_table.py writes OUT/steps_table.md(.json).
# Resumable: finished trainings are skipped (run.sh resumes an interrupted one).
. ./path.sh || exit 1
set -euo pipefail

data=data
cal_data=""
seeds="1 2 3"
out=exp/steps
top_n=100
mfcon_config=conf/mfa_conformer_mfcon_small.yaml
baseline_config=conf/mfa_conformer_small.yaml
lm_config=conf/mfa_conformer_mfcon_small_lm.yaml
help_message="Usage: $0 [--data data] [--cal_data DIR] [--seeds '1 2 3'] [--out exp/steps]
  [--top_n 100] [--mfcon_config FILE] [--baseline_config FILE] [--lm_config FILE]"
_options_list="data cal_data seeds out top_n mfcon_config baseline_config lm_config"
. tools/parse_options.sh

common=(--data "$data" --top_n "$top_n" --lm_config "$lm_config")
[ -z "$cal_data" ] || common+=(--cal_data "$cal_data")
systems=()
for seed in $seeds; do
  for sys in mfcon baseline; do
    exp=$out/$sys/seed$seed
    if [ $sys = mfcon ]; then config=$mfcon_config; lm_opts="--seed $seed"
    else config=$baseline_config; lm_opts="--seed $seed --mfcon_args.enable false"; fi
    [ -f $exp/scores/results.json ] || bash run.sh --stage 2 --stop_stage 4 \
      --config $config --exp_dir $exp --train_opts "--seed $seed" "${common[@]}"
    bash run.sh --stage 7 --stop_stage 7 --exp_dir $exp "${common[@]}"
    [ -f ${exp}_lm/models/avg_model.pt ] || bash run.sh --stage 6 --stop_stage 6 \
      --exp_dir $exp --lm_opts "$lm_opts" "${common[@]}"
    bash run.sh --stage 3 --stop_stage 4 --exp_dir ${exp}_lm "${common[@]}"
    bash run.sh --stage 7 --stop_stage 7 --exp_dir ${exp}_lm "${common[@]}"
  done
done
python -m wespeaker_mfcon.analysis.steps_table --system MFCon=$out/mfcon \
  --system baseline=$out/baseline --seeds $seeds --out $out/steps_table.md
