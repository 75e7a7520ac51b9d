"""Build the augmentation lists (noise.scp, rir.scp) from local MUSAN / RIRS_NOISES copies:
dataset/aug_lists.py.

    prepare_aug_lists.py --musan_root DIR --rir_root DIR --out_dir DIR
    prepare_aug_lists.py --synthetic N --out_dir DIR     # generated stand-in (mini corpus)

``noise.scp`` lines are ``<type>-<name> <abs path>`` with type noise, music or speech (speech
is used for babble); ``rir.scp`` lines are ``<name> <abs path>``. Nothing is downloaded: the
roots must already hold the corpora. MUSAN root: the ``musan`` directory or one containing it.
RIR root: the ``RIRS_NOISES`` directory or one containing it (parts chosen with --rir_sets),
else any directory of wavs.
"""

import argparse

from wespeaker_mfcon.dataset.aug_lists import RIR_SETS, write_aug_lists
from wespeaker_mfcon.synth.noise import write_synthetic_lists
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError


def get_parser():
    p = argparse.ArgumentParser(
        description="Write noise.scp / rir.scp for on-the-fly augmentation from local MUSAN "
                    "and RIRS_NOISES copies, or generate a synthetic stand-in set.")
    p.add_argument("--musan_root", default="", help="local MUSAN directory (or its parent)")
    p.add_argument("--rir_root", default="", help="local RIRS_NOISES directory (or its parent)")
    p.add_argument("--rir_sets", nargs="+", choices=RIR_SETS, default=list(RIR_SETS),
                   help="which RIRS_NOISES parts to use (default: both)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="instead of real corpora, generate N synthetic files per noise type "
                        "and N RIRs under out_dir (see wespeaker_mfcon.synth.noise)")
    p.add_argument("--seed", type=int, default=0, help="seed for --synthetic (default 0)")
    p.add_argument("--out_dir", required=True, help="where noise.scp and rir.scp go")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    if args.synthetic and (args.musan_root or args.rir_root):
        raise UserError("give either --synthetic or --musan_root/--rir_root, not both")
    if args.synthetic:
        write_synthetic_lists(args.out_dir, args.synthetic, args.seed)
    else:
        write_aug_lists(args.out_dir, musan_root=args.musan_root, rir_root=args.rir_root,
                        rir_sets=args.rir_sets)


if __name__ == "__main__":
    run_main(main)
