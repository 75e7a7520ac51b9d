"""Stage 3: speaker embeddings for a wav list or a feats list, from a .pt or an .onnx model:
apps/extract.py.

  python -m wespeaker_mfcon.bin.extract --model exp/E/models/avg_model.pt \
      --wav_scp data/test/wav.scp --out_dir exp/E/embeddings/test
writes OUT/xvector.ark and OUT/xvector.scp (kaldiio). Full-length utterances, batched by
length: the list is sorted by frame count and cut into batches of at most --batch_size
utterances and --max_frames padded frames (batch size x longest), so padding is small. A model
that masks padding (MFA-Conformer .pt; an .onnx with a `lengths` input) batches different
lengths; any other batches only utterances of exactly the same length. Either way an embedding
equals the utterance's alone (up to float rounding, < 1e-4); --batch_size 1 embeds one at a time.
"""

import argparse

from wespeaker_mfcon.apps.extract import extract_embeddings, job_device
from wespeaker_mfcon.utils.entrypoint import run_main


def get_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint .pt or exported .onnx")
    parser.add_argument("--config", default=None,
                        help="config.yaml for a .pt (default: found beside the model)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav_scp", help="'utt path' list of wavs (fbank computed here)")
    src.add_argument("--feats_scp", help="kaldiio feats.scp from stage 1")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--name", default="xvector", help="output basename (NAME.ark/scp)")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="utterances per batch at most; 1 = one at a time (default: 16 for "
                             "a .pt, 1 for an .onnx: ONNX Runtime on CPU was not faster batched)")
    parser.add_argument("--max_frames", type=int, default=20000,
                        help="padded frames per batch at most, batch size x longest utterance "
                             "(default 20000 = 200 s); a longer utterance goes alone")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (.pt only)")
    parser.add_argument("--gpu_list", default="",
                        help="with --device cuda and --job J: use GPU list[(J-1) %% len]")
    parser.add_argument("--job", type=int, default=1, help="job number (set by extract.sh)")
    parser.add_argument("--num_threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None):
    args = get_args(argv)
    extract_embeddings(args.model, args.out_dir, wav_scp=args.wav_scp,
                       feats_scp=args.feats_scp, config=args.config, name=args.name,
                       batch_size=args.batch_size, max_frames=args.max_frames,
                       device=job_device(args.device, args.gpu_list, args.job),
                       num_threads=args.num_threads)


if __name__ == "__main__":
    run_main(main)
