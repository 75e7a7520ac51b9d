#!/usr/bin/env bash
# MFA-Conformer + MFCon on VoxCeleb (or, with no roots given, the embedded mini corpus).
#   bash run.sh --stage 0 --stop_stage 5
#   bash run.sh --train_root /data/voxceleb2/dev/aac --test_root /data/voxceleb1/wav \
#     --trials "/data/voxceleb1/veri_test2.txt" --config conf/mfa_conformer_mfcon.yaml \
#     --exp_dir exp/mfa_conformer_mfcon --gpus 0,1,2,3
. ./path.sh || exit 1
set -euo pipefail

stage=0
stop_stage=5
config=conf/mfa_conformer_mfcon_small.yaml
exp_dir=exp/mfa_conformer_mfcon_small
data=data
nj=2
data_type=feat            # stage 1: feat (fbank arks) | shard (also tar shards of data/train,
                          #   for data_type: shard configs, e.g. conf/*_shard*.yaml)
shard_group_size=4        # shards hold each speaker's utterances in runs of this many: the
                          #   K (utts_per_spk) of the shard configs; 1 = plain shuffle
gpus=""                   # e.g. "0,1,2,3"; empty = CPU (gloo)
cpu_procs=1               # processes for CPU training (gloo DDP when > 1)
nnodes=1                  # stage 2 on several nodes (run.sh on each, same options): N, or
                          #   MIN:MAX for an elastic job that goes on when nodes are lost
node_rank=0               # this node's number (0 = the node that averages the checkpoints)
rdzv_endpoint=""          # HOST:PORT of torchrun's c10d rendezvous (a node that stays up, e.g.
                          #   node 0); empty = one node (--standalone)
rdzv_id=mfcon             # the job's id, the same on every node (e.g. the SLURM job id)
max_restarts=0            # torchrun restarts of the worker group after a failure; each
                          #   resumes from the last checkpoint (docs/distributed.md)
torchrun_opts=""          # more torchrun options, e.g. "--rdzv_conf last_call_timeout=60"
train_opts=""             # config overrides, e.g. "--num_epochs 2 --mfcon_args.weight 0.1"
train_root=""             # VoxCeleb-layout training tree; all three empty = mini corpus
test_root=""
trials=""                 # VoxCeleb-format trial lists (space-separated)
on_bad_audio=error        # stage 0, a bad audio file: error (stop; list in data/SET.bad_audio.txt)
                          #   | skip (leave it out; list in data/SET/bad_audio.txt)
mini_opts=""              # options of tools/make_mini_corpus.py
musan_root=""             # local MUSAN and RIRS_NOISES copies -> data/aug/{noise,rir}.scp for
rir_root=""               #   data_type: raw configs (the mini corpus gets a synthetic set)
num_avg=3
quantize=none             # stage 5: int8 = also avg_model_int8.onnx (static QDQ, calibrated on
                          #   ${data}/train; docs/deployment.md says when it is faster)
lm_config=conf/mfa_conformer_mfcon_small_lm.yaml  # stage 6 (large margin) -> ${exp_dir}_lm
lm_opts=""                # stage 6 config overrides, e.g. "--num_epochs 2"
score_norm_method=asnorm  # asnorm | snorm
top_n=100
cal_data=""               # stage 7: a held-out data dir (with feats.scp) to calibrate on;
                          #   empty = trials drawn from the training set
cal_opts=""               # more options of local/calibrate.sh, e.g. "--num_trials 20000"

help_message="Usage: $0 [--stage N] [--stop_stage M] [--config FILE] [--exp_dir DIR] [--data DIR]
  [--nj N] [--gpus 0,1] [--cpu_procs N] [--train_root DIR --test_root DIR --trials 'F1 F2']
  [--nnodes N|MIN:MAX --node_rank R --rdzv_endpoint HOST:PORT --rdzv_id ID] [--max_restarts N]
  [--data_type feat|shard] [--shard_group_size K]
  [--on_bad_audio error|skip] [--musan_root DIR] [--rir_root DIR]
  [--mini_opts '--num_train_spk 40 ...']
  [--num_avg N] [--score_norm_method asnorm|snorm] [--top_n N] [--train_opts '--key value']
  [--lm_config FILE] [--lm_opts '--key value'] [--cal_data DIR] [--cal_opts '--key value']
Stages: 0 data prep, 1 fbank (+ tar shards with --data_type shard), 2 train + average,
  3 embeddings, 4 scoring, 5 ONNX export (--quantize int8: also an int8 model),
  6 large-margin fine-tuning of EXP/models/avg_model.pt (--lm_config) into EXP_lm,
  7 score calibration (after stage 4; on --cal_data, else on training-set trials).
Stages 3-5 of the fine-tuned model: $0 --exp_dir EXP_lm --stage 3 --stop_stage 5.
Fine-tuning on other speakers: --train_opts '--init_from OTHER/models/avg_model.pt'."
. tools/parse_options.sh

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  echo "stage 0: data preparation"
  use_mini=false
  if [ -z "${train_root}${test_root}${trials}" ]; then
    use_mini=true
    python tools/make_mini_corpus.py --out_dir ${data}/mini --jobs ${nj} ${mini_opts}
    train_root=${data}/mini/train/wav; test_root=${data}/mini/test/wav
    trials=${data}/mini/test/trials.txt
  elif [ -z "${train_root}" ] || [ -z "${test_root}" ] || [ -z "${trials}" ]; then
    echo "$0: give all of --train_root, --test_root and --trials, or none (mini corpus)" >&2
    exit 1
  fi
  python -m wespeaker_mfcon.bin.prepare_data --train_root "${train_root}" \
    --test_root "${test_root}" --trials ${trials} --data "${data}" --nj ${nj} \
    --on_bad_audio ${on_bad_audio}
  if [ -n "${musan_root}${rir_root}" ]; then
    python -m wespeaker_mfcon.bin.prepare_aug_lists ${musan_root:+--musan_root ${musan_root}} \
      ${rir_root:+--rir_root ${rir_root}} --out_dir ${data}/aug
  elif ${use_mini}; then
    python -m wespeaker_mfcon.bin.prepare_aug_lists --synthetic 6 --out_dir ${data}/aug
  fi
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  echo "stage 1: fbank features"
  for x in train test; do
    tools/make_fbank.sh --nj ${nj} ${data}/${x}
  done
  if [ "${data_type}" = shard ]; then
    echo "stage 1: tar shards of ${data}/train"
    python -m wespeaker_mfcon.bin.make_shards --data ${data}/train --nj ${nj} \
      --group_size ${shard_group_size}
  fi
fi

# train_and_average CONFIG EXP_DIR [TRAIN OPTIONS]: torchrun training (bin/torchrun.py: torchrun,
# ending a failure with one line), then checkpoint averaging on node 0
train_and_average() {
  local conf=$1 dir=$2 device nproc
  shift 2
  if [ -n "${gpus}" ]; then
    device=cuda; nproc=$(echo ${gpus} | tr ',' '\n' | wc -l)
    export CUDA_VISIBLE_DEVICES=${gpus}
  else
    device=cpu; nproc=${cpu_procs}
  fi
  # a config or data mistake is one line here, not a launcher traceback
  python -m wespeaker_mfcon.bin.train --check_only --config ${conf} --exp_dir ${dir} \
    --train_data ${data}/train "$@"
  local launch="--standalone --nnodes=1"
  if [ -n "${rdzv_endpoint}" ]; then
    launch="--nnodes=${nnodes} --node_rank=${node_rank} --rdzv_backend=c10d"
    launch="${launch} --rdzv_endpoint=${rdzv_endpoint} --rdzv_id=${rdzv_id}"
  fi
  python -m wespeaker_mfcon.bin.torchrun ${launch} --max_restarts=${max_restarts} \
    ${torchrun_opts} --nproc_per_node=${nproc} -m wespeaker_mfcon.bin.train \
    --config ${conf} --exp_dir ${dir} --train_data ${data}/train --device ${device} "$@"
  if [ "${node_rank}" = 0 ]; then
    python -m wespeaker_mfcon.bin.average_model --models_dir ${dir}/models \
      --num ${num_avg} --dst ${dir}/models/avg_model.pt
  fi
}

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  echo "stage 2: training ${config} -> ${exp_dir}"
  train_and_average ${config} ${exp_dir} ${train_opts}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  echo "stage 3: embeddings"
  for x in test train; do
    bash extract.sh --model ${exp_dir}/models/avg_model.pt --feats_scp ${data}/${x}/feats.scp \
      --out_dir ${exp_dir}/embeddings/${x} --nj ${nj} --gpus "${gpus}"
  done
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
  echo "stage 4: scoring"
  bash local/score.sh --exp_dir ${exp_dir} --data ${data} \
    --score_norm_method ${score_norm_method} --top_n ${top_n}
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  echo "stage 5: ONNX export"
  python -m wespeaker_mfcon.bin.export_onnx --exp_dir ${exp_dir} \
    --checkpoint ${exp_dir}/models/avg_model.pt --output ${exp_dir}/models/avg_model.onnx \
    --quantize ${quantize} --calib_data ${data}/train
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
  # Large-margin fine-tuning: a normal training run started from the averaged model (with its
  # classification head: init_projection in the config) into a new exp dir; stages 3-5 take it
  # as they are: bash run.sh --exp_dir ${exp_dir}_lm --stage 3 --stop_stage 5
  echo "stage 6: large-margin fine-tuning ${lm_config}: ${exp_dir} -> ${exp_dir}_lm"
  train_and_average ${lm_config} ${exp_dir}_lm \
    --init_from ${exp_dir}/models/avg_model.pt ${lm_opts}
  echo "stage 6: done; its stages 3-5: $0 --exp_dir ${exp_dir}_lm --stage 3 --stop_stage 5"
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
  echo "stage 7: score calibration ${cal_data:+on ${cal_data}}"
  cal_args=""
  if [ -n "${cal_data}" ]; then
    bash extract.sh --model ${exp_dir}/models/avg_model.pt --feats_scp ${cal_data}/feats.scp \
      --out_dir ${exp_dir}/embeddings/cal --nj ${nj} --gpus "${gpus}"
    cal_args="--cal_data ${cal_data} --cal_embeddings ${exp_dir}/embeddings/cal/xvector.scp"
  fi
  bash local/calibrate.sh --exp_dir ${exp_dir} --data ${data} \
    --score_norm_method ${score_norm_method} --top_n ${top_n} ${cal_args} ${cal_opts}
fi

if [ ${stop_stage} -ge 4 ] && [ -f ${exp_dir}/scores/results.json ]; then
  echo "results of ${exp_dir} (EER in %; scores, DET plot in ${exp_dir}/scores):"
  python -m wespeaker_mfcon.bin.compute_metrics --show ${exp_dir}/scores/results.json
fi
