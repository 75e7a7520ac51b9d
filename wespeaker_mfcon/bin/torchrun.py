"""torchrun for the recipe: the options of torch.distributed.run, unchanged; a failed job ends
with one error line (training/elastic.py says what else differs).

  python -m wespeaker_mfcon.bin.torchrun --nnodes 1:2 --nproc_per_node 4 --max_restarts 3 \
      --rdzv_backend c10d --rdzv_endpoint HOST:29400 --rdzv_id JOB \
      -m wespeaker_mfcon.bin.train --config C --exp_dir E --train_data D --device cuda
"""

import sys

from wespeaker_mfcon.training.elastic import run_torchrun
from wespeaker_mfcon.utils.entrypoint import run_main


def main(argv=None):
    run_torchrun(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    run_main(main)
