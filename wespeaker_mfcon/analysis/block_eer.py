"""How speaker-discriminative is each Conformer block? EER / minDCF per block output.

    python -m wespeaker_mfcon.analysis.block_eer --exp_dir exp/E \
        --feats_scp data/test/feats.scp --trials data/test/trials/vox1_O.kaldi \
        [--checkpoint exp/E/models/avg_model.pt] [--out exp/E/block_eer.json] \
        [--plot exp/E/block_eer.png]

Every utterance named in the trial list is run once through the backbone (eval mode, full
length, per-utterance mean normalization first, as stage 3 does). The output of each block
(T', C_k) is pooled over time into [mean, std] (2*C_k; std with ddof=0); the final embedding
is kept as well. Each trial is scored with the cosine of the two pooled vectors after
subtracting the mean pooled vector of the evaluated (test) utterances; EER and minDCF follow.

The final embedding gets the same treatment (test-set mean, not the training-cohort mean of
stage 4), so its numbers can differ slightly from scores/results.json; it is the reference
point the block numbers are compared with.

Output JSON (EER in %, blocks numbered from 1 = the first Conformer block):
    {"trials": "vox1_O", "checkpoint": ..., "num_trials": N, "num_utts": U,
     "blocks": [{"block": 1, "dim": 2*C_1, "eer": .., "min_dcf_0.01": .., ...}, ...],
     "embedding": {"dim": E, "eer": .., "min_dcf_0.01": .., ...}}
"""

import argparse
import json
import logging
import os
from collections.abc import Mapping

import kaldiio
import numpy as np
import torch
from tqdm import tqdm

from wespeaker_mfcon.scoring.metrics import evaluate
from wespeaker_mfcon.analysis.plots import plot_block_curves
from wespeaker_mfcon.frontend.fbank import apply_cmn
from wespeaker_mfcon.models.embedding_net import load_embedding_net
from wespeaker_mfcon.utils.entrypoint import run_main
from wespeaker_mfcon.utils.errors import UserError
from wespeaker_mfcon.utils.file_utils import atomic_write, read_scp
from wespeaker_mfcon.scoring.cosine import cosine_scores, prepare
from wespeaker_mfcon.scoring.trials import read_trials, trial_indices, trial_name

log = logging.getLogger("block_eer")


def get_parser():
    p = argparse.ArgumentParser(prog="block_eer.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, help="experiment dir (config.yaml, models/)")
    p.add_argument("--checkpoint", default=None,
                   help="model checkpoint (default: EXP_DIR/models/avg_model.pt)")
    p.add_argument("--config", default=None, help="config (default: EXP_DIR/config.yaml)")
    p.add_argument("--feats_scp", required=True, help="kaldiio feats.scp of the test set")
    p.add_argument("--trials", required=True, help="Kaldi trials 'enroll test target|nontarget'")
    p.add_argument("--out", default=None, help="output JSON (default: EXP_DIR/block_eer.json)")
    p.add_argument("--plot", default=None, help="optional PNG: EER against block index")
    p.add_argument("--p_target", type=float, nargs="+", default=[0.01])
    p.add_argument("--batch_size", type=int, default=16,
                   help="utterances of identical length forwarded together")
    p.add_argument("--device", default="cpu")
    p.add_argument("--num_threads", type=int, default=1)
    return p


# ----------------------------------------------------------------------------- features

def stats_pool(x):
    """(B, T, C) -> (B, 2C): mean and std (ddof=0) over time."""
    x = x.float()
    mean = x.mean(dim=1)
    var = (x * x).mean(dim=1) - mean * mean
    return torch.cat([mean, var.clamp(min=0.0).sqrt()], dim=1)


class ScpFeats(Mapping):
    """Read-on-access {utt: (T, F) float32} view of a feats.scp, restricted to `utts`
    (all of which must be in the list); errors name the file and the utterance."""

    def __init__(self, feats_scp, utts):
        table = read_scp(feats_scp)
        missing = [u for u in utts if u not in table]
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise UserError(f"{feats_scp}: {len(missing)} trial utterances have no features: "
                            f"{shown}")
        self.path = feats_scp
        self.specs = {u: table[u] for u in utts}

    def __len__(self):
        return len(self.specs)

    def __iter__(self):
        return iter(self.specs)

    def __getitem__(self, utt):
        spec = self.specs[utt]
        try:
            mat = np.asarray(kaldiio.load_mat(spec), dtype=np.float32)
        except Exception as e:
            raise UserError(f"{self.path}: {utt}: cannot read {spec}: {e}") from None
        if mat.ndim != 2 or mat.shape[0] == 0:
            raise UserError(f"{self.path}: {utt}: expected a (frames, dims) matrix, got shape "
                            f"{mat.shape}")
        if not np.isfinite(mat).all():
            raise UserError(f"{self.path}: {utt}: features contain NaN/Inf")
        return mat


def pooled_block_features(model, feats, utts, batch_size=16, device="cpu", chunk=512):
    """Run the backbone once on every utterance of `utts`.

    model: backbone returning (embeds, blocks); feats: mapping utt -> (T, F) array (not yet
    mean-normalized; read lazily, `chunk` utterances at a time). Returns (list over blocks of
    (N, 2*C_k) float64, (N, E) float64) in the order of `utts`. Within a chunk, utterances
    of identical length share a batch (no padding, so batching changes nothing).
    """
    n = len(utts)
    pooled, embeds = None, None
    model.eval()
    bar = tqdm(total=n, desc="block features", mininterval=2, dynamic_ncols=True,
               disable=n < 200)
    with torch.inference_mode():
        for c0 in range(0, n, chunk):
            mats = {i: feats[utts[i]] for i in range(c0, min(c0 + chunk, n))}
            by_len = {}
            for i, mat in mats.items():
                by_len.setdefault(mat.shape[0], []).append(i)
            for idx_all in by_len.values():
                for s in range(0, len(idx_all), batch_size):
                    idx = idx_all[s:s + batch_size]
                    x = torch.from_numpy(np.stack([mats[i] for i in idx])).to(device)
                    try:
                        emb, blocks = model(apply_cmn(x))
                    except RuntimeError as e:
                        raise UserError(f"{utts[idx[0]]}: model forward failed on "
                                        f"{x.shape[1]} frames (too short?): "
                                        f"{str(e)[:160]}") from None
                    if pooled is None:
                        pooled = [np.zeros((n, 2 * b.shape[-1])) for b in blocks]
                        embeds = np.zeros((n, emb.shape[-1]))
                    for k, b in enumerate(blocks):
                        pooled[k][idx] = stats_pool(b).double().cpu().numpy()
                    embeds[idx] = emb.double().cpu().numpy()
                    bar.update(len(idx))
    bar.close()
    return pooled, embeds


# ----------------------------------------------------------------------------- metrics

def trial_scores(vectors, ei, ti):
    """Cosine trial scores after subtracting the mean of all rows of `vectors`."""
    vectors = np.asarray(vectors, dtype=np.float64)
    return cosine_scores(prepare(vectors, vectors.mean(axis=0)), ei, ti)


def metrics(scores, labels, p_targets):
    """{'eer': %, 'min_dcf_<p>': ...} as compute_metrics reports them."""
    res = evaluate(scores, labels, p_targets)
    return {k: res[k] for k in res if k == "eer" or k.startswith("min_dcf_")}


def block_eer(model, feats, enroll, test, labels, p_targets=(0.01,), batch_size=16,
              device="cpu"):
    """Per-block and final-embedding metrics as the dict written to the JSON.

    feats: mapping utt -> (T, F) features (a dict or ScpFeats) of the evaluated utterances;
    the mean subtracted before scoring is the mean over all of them."""
    utts = list(feats)
    index = {u: i for i, u in enumerate(utts)}
    ei, ti = trial_indices(enroll, test, index)
    pooled, embeds = pooled_block_features(model, feats, utts, batch_size, device)
    out = {"blocks": [], "num_trials": int(len(labels)), "num_utts": len(utts)}
    for k, vec in enumerate(pooled, 1):
        out["blocks"].append({"block": k, "dim": int(vec.shape[1]),
                              **metrics(trial_scores(vec, ei, ti), labels, p_targets)})
    out["embedding"] = {"dim": int(embeds.shape[1]),
                        **metrics(trial_scores(embeds, ei, ti), labels, p_targets)}
    return out


# ----------------------------------------------------------------------------- main

def main(argv=None):
    args = get_parser().parse_args(argv)
    for p in args.p_target:
        if not 0.0 < p < 1.0:
            raise UserError(f"--p_target must be in (0, 1), got {p}")
    torch.set_num_threads(max(1, args.num_threads))
    checkpoint = args.checkpoint or os.path.join(args.exp_dir, "models", "avg_model.pt")
    config = args.config or os.path.join(args.exp_dir, "config.yaml")
    out_path = args.out or os.path.join(args.exp_dir, "block_eer.json")

    enroll, test, labels = read_trials(args.trials)
    n_tar = int(labels.sum())
    if n_tar == 0 or n_tar == len(labels):
        raise UserError(f"{args.trials}: need both target and nontarget trials, got {n_tar} "
                        f"target / {len(labels) - n_tar} nontarget")
    utts = list(dict.fromkeys(list(enroll) + list(test)))
    net, _ = load_embedding_net(checkpoint, config)
    model = net.model.to(args.device)
    feats = ScpFeats(args.feats_scp, utts)
    log.info("%d utterances, %d trials, %d blocks", len(utts), len(labels),
             len(getattr(model, "block_dims", [])))
    res = block_eer(model, feats, enroll, test, labels, p_targets=args.p_target,
                    batch_size=args.batch_size, device=args.device)
    result = {"trials": trial_name(args.trials), "checkpoint": checkpoint, **res}
    with atomic_write(out_path) as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    dcf = f"min_dcf_{args.p_target[0]:g}"
    print(f"{'block':>9}  {'dim':>5}  {'EER(%)':>7}  {dcf:>12}")
    for b in res["blocks"]:
        print(f"{b['block']:>9}  {b['dim']:>5}  {b['eer']:>7.3f}  {b[dcf]:>12.4f}")
    e = res["embedding"]
    print(f"{'embedding':>9}  {e['dim']:>5}  {e['eer']:>7.3f}  {e[dcf]:>12.4f}")
    if args.plot:
        plot_block_curves([{"label": os.path.basename(os.path.normpath(args.exp_dir)),
                            "blocks": [b["block"] for b in res["blocks"]],
                            "eer": [b["eer"] for b in res["blocks"]],
                            "embedding": e["eer"]}],
                          args.plot, title=f"EER per block ({result['trials']})")
        log.info("plot -> %s", args.plot)
    log.info("block EER -> %s", out_path)
    return 0


if __name__ == "__main__":
    run_main(main)
