"""Identification accuracy on a data dir's speakers (issue 21): enroll one session per speaker,
identify with the others; closed-set top-1/top-5 and open-set outcomes through the calibration
(wespeaker_mfcon/analysis/identification_eval.py says exactly how).

    python benchmarks/eval_identification.py --exp_dir exp/E --data data/test
        [--model exp/E/models/avg_model.onnx] [--p_targets 0.01 0.1 0.5] [--json OUT]

Accuracy, not speed: it runs on a busy machine (analysis/benchmarking.start(timed=False)).
"""

import argparse

from wespeaker_mfcon.analysis import identification_eval
from wespeaker_mfcon.analysis.benchmarking import finish, start
from wespeaker_mfcon.utils.entrypoint import probability, run_main


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, help="experiment dir (its avg_model.pt and "
                                                    "calibration.json)")
    p.add_argument("--model", default=None, help="another model file of it (.pt or .onnx)")
    p.add_argument("--data", required=True, help="Kaldi data dir: wav.scp, utt2spk")
    p.add_argument("--p_targets", type=probability, nargs="+", default=[0.01, 0.1, 0.5])
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    record = start("identification", "eval_identification.py", argv, force=False, timed=False)
    record.update(identification_eval.evaluate(args.model or args.exp_dir, args.data,
                                               args.p_targets, args.device))
    print(identification_eval.render(finish(record, args.json)))


if __name__ == "__main__":
    run_main(main)
