#!/usr/bin/env bash
# Run a study (conf/studies/*.yaml) from the recipe dir: analysis/study.py trains and scores
# every setting x variant x seed with this recipe's stages 2-4 (resumable), then writes the
# comparisons and the study's report.
#   bash local/run_study.sh conf/studies/lambda_speakers.yaml --jobs 2
#   bash local/run_study.sh conf/studies/weighting.yaml --settings t80 --stage 2
. ./path.sh || exit 1
exec python -m wespeaker_mfcon.analysis.study "$@"
