"""Stage 1 with --data_type shard: WeSpeaker tar shards of a training data dir.

    python -m wespeaker_mfcon.bin.make_shards --data data/train --nj 4 [--group_size 4]

writes data/train/shards/shards_*.tar ({key}.spk + {key}.wav members) and data/train/shard.list
(dataset/shard_writer.py). A killed run started again keeps every finished shard.
--group_size K writes each speaker's utterances in runs of K (runs in random order), so that
the P x K batcher of a pk config finds K distinct utterances of many speakers in its bounded
buffer; read such shards with shard_args.shuffle_size 1 (a shuffle buffer breaks the runs up).
"""

import argparse
import logging

from wespeaker_mfcon.dataset.shard_writer import write_shards
from wespeaker_mfcon.utils.entrypoint import at_least, run_main


def get_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="Kaldi data dir with wav.scp and utt2spk")
    p.add_argument("--num_utts_per_shard", type=at_least(1), default=1000,
                   help="utterances per tar (WeSpeaker's default 1000)")
    p.add_argument("--nj", type=at_least(1), default=1, help="parallel writer processes")
    p.add_argument("--seed", type=int, default=777, help="seed of the utterance order")
    p.add_argument("--group_size", type=at_least(1), default=1,
                   help="utterances of one speaker kept together (the config's utts_per_spk "
                        "for sampler pk); 1 = a plain shuffle, as WeSpeaker's shards")
    p.add_argument("--no_progress", action="store_true", help="no tqdm progress bar")
    return p.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    written, kept = write_shards(args.data, args.num_utts_per_shard, nj=args.nj,
                                 seed=args.seed, group_size=args.group_size,
                                 progress=not args.no_progress)
    logging.info("%s/shard.list: %d shards (%d written, %d kept from an earlier run)",
                 args.data, written + kept, written, kept)


if __name__ == "__main__":
    run_main(main)
