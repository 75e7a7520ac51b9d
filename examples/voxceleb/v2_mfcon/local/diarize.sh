#!/usr/bin/env bash
# Speaker diarization of every recording of a wav.scp into one NIST RTTM file, with a progress
# bar; optionally scored against a reference RTTM (DER and JER, pyannote.metrics).
#   bash local/diarize.sh --model exp/E --wav_scp data/meetings/wav.scp --out_dir exp/E/diar
#   bash local/diarize.sh --model exp/E/models/avg_model.onnx --wav_scp W --out_dir D \
#     --nj 2 --num_speakers 4 --ref_rttm data/meetings/ref.rttm
# Writes OUT/rttm (and OUT/der.json with --ref_rttm). The speaker count is automatic
# (calibrated AHC when the experiment holds calibration.json, else spectral clustering) unless
# --num_speakers (every recording) or --reco2num_spk ("recording N" lines) gives it.
# Test data: python -m wespeaker_mfcon.bin.make_conversations --out_dir data/conversations
. ./path.sh || exit 1
set -euo pipefail

model=""
wav_scp=""
out_dir=""
nj=2
num_speakers=""
reco2num_spk=""
ref_rttm=""
diarize_opts=""   # more options of wespeaker_mfcon.bin.diarize, e.g. "--window 2.0 --hop 1.0"
help_message="Usage: $0 --model EXP|X.pt|X.onnx --wav_scp FILE --out_dir DIR [--nj N]
  [--num_speakers N | --reco2num_spk FILE] [--ref_rttm FILE] [--diarize_opts '...']"
. tools/parse_options.sh

if [ -z "$model" ] || [ -z "$wav_scp" ] || [ -z "$out_dir" ]; then
  printf '%s\n' "$help_message" >&2; exit 1
fi
mkdir -p "$out_dir"
python -m wespeaker_mfcon.bin.diarize --model "$model" --wav_scp "$wav_scp" \
  --rttm "$out_dir/rttm" --nj "$nj" ${num_speakers:+--num_speakers $num_speakers} \
  ${reco2num_spk:+--reco2num_spk $reco2num_spk} ${diarize_opts}
if [ -n "$ref_rttm" ]; then
  python -m wespeaker_mfcon.bin.score_diarization --ref "$ref_rttm" --hyp "$out_dir/rttm" \
    --out "$out_dir/der.json"
fi
