"""Identification accuracy on a data dir's speakers (issue 21): enroll one session per speaker,
identify with the others; closed-set top-1/top-5 and open-set outcomes through the calibration
(wespeaker_mfcon/analysis/identification_eval.py says exactly how).

    python benchmarks/eval_identification.py --exp_dir exp/E --data data/test
        [--model exp/E/models/avg_model.onnx] [--p_targets 0.01 0.1 0.5] [--json OUT]
"""

import argparse
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.common import command_line  # noqa: E402
from wespeaker_mfcon.analysis import identification_eval  # noqa: E402
from wespeaker_mfcon.utils.entrypoint import probability, run_main  # noqa: E402
from wespeaker_mfcon.utils.file_utils import atomic_write  # noqa: E402


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
    result = identification_eval.evaluate(args.model or args.exp_dir, args.data,
                                          args.p_targets, args.device)
    result.update(host=f"a {os.cpu_count()}-CPU {platform.machine()} machine",
                  command=command_line("eval_identification.py", argv))
    print(identification_eval.render(result))
    if args.json:
        with atomic_write(args.json) as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    run_main(main)
