"""analysis/weighting_table.py: oracle choice, changes against baseline and oracle, verdicts."""

import json

import pytest

from wespeaker_mfcon.analysis import weighting_table
from wespeaker_mfcon.utils.errors import UserError


def stat(values):
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    return {"mean": mean, "std": std, "n": n, "values": values}


def variant(cosine, asnorm):
    return {"seeds": ["seed1", "seed2", "seed3"], "block_eer": None,
            "results": {"trials": {"cosine": {"eer": stat(cosine),
                                              "min_dcf_0.01": stat([0.9, 0.8, 0.85])},
                                   "asnorm": {"eer": stat(asnorm)}}}}


def write_setting(path, variants, baseline="baseline"):
    path.write_text(json.dumps({"baseline": baseline, "variants": variants}))
    return str(path)


@pytest.fixture
def two_settings(tmp_path):
    # setting A: lambda 3 is the oracle (10.0), grad_ratio 10.2 is within its spread and far
    # below the baseline (14.0); loss_ratio 12.9 is beyond the oracle's spread.
    a = {"baseline": variant([13, 14, 15], [12, 13, 14]),
         "mfcon_l1.0": variant([11, 12, 13], [10, 11, 12]),
         "mfcon_l3.0": variant([9.5, 10, 10.5], [9, 9.5, 10]),
         "mfcon_grad_ratio": variant([9.7, 10.2, 10.7], [9, 10, 11]),
         "mfcon_loss_ratio": variant([12.8, 12.9, 13.0], [12, 12.5, 13])}
    # setting B (prefixed names, as the augmented variant file has): lambda 10 is the oracle;
    # grad_ratio is better than the oracle beyond the spread (passes); loss_ratio is not run.
    b = {"aug_baseline": variant([19, 20, 21], [18, 19, 20]),
         "aug_mfcon_l3.0": variant([17, 17.5, 18], [16, 17, 18]),
         "aug_mfcon_l10": variant([15, 16, 17], [14, 15, 16]),
         "aug_mfcon_grad_ratio": variant([12, 12.5, 13], [11, 12, 13])}
    a["mfcon_grad_ratio"]["block_eer"] = {
        "blocks": [{"block": k, **stat([12.0 + k, 13.0 + k, 14.0 + k])} for k in (1, 2)],
        "embedding": stat([10.0, 11.0, 12.0]), "trials": ["trials"]}
    return [f"A={write_setting(tmp_path / 'a.json', a)}",
            f"B={write_setting(tmp_path / 'b.json', b, baseline='aug_baseline')}"]


def test_oracle_changes_and_verdicts(two_settings, tmp_path):
    out = tmp_path / "table.md"
    weighting_table.main(sum((["--setting", s] for s in two_settings), [])
                         + ["--schemes", "grad_ratio", "loss_ratio", "--out", str(out),
                            "--plot", str(tmp_path / "blocks.png")])
    text = out.read_text()
    assert "| mfcon_l3.0 (oracle) | 3 | 10.00 ± 0.50 | -28.6% (yes) | – |" in text
    assert "| aug_mfcon_l10 (oracle) |" in text
    # grad_ratio in A: +0.20 points from the oracle, spread 0.5 + 0.5: within it
    assert "| mfcon_grad_ratio | 3 | 10.20 ± 0.50 | -27.1% (yes) | +0.20 (no) |" in text
    assert text.count("| 14.0 / 15.0 (emb. 11.0) |") == 1          # its block EERs
    assert (tmp_path / "blocks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # loss_ratio in A: +2.90 points, beyond the spread; below the baseline within the spread
    assert "| mfcon_loss_ratio | 3 | 12.90 ± 0.10 | -7.9% (no) | +2.90 (yes) |" in text
    assert "| aug_mfcon_grad_ratio | 3 | 12.50 ± 0.50 | -37.5% (yes) | -3.50 (yes) |" in text
    assert "| grad_ratio | yes | yes | yes |" in text
    assert "| loss_ratio | no | not run | no |" in text    # one miss decides
    verdicts = json.loads((tmp_path / "table.md.json").read_text())["verdicts"]
    assert verdicts == {"grad_ratio": True, "loss_ratio": False}


def test_scheme_missing_everywhere_is_undecided(two_settings):
    report, verdicts = weighting_table.format_report(
        [weighting_table.load_setting(s) for s in two_settings], ["uncertainty"])
    assert verdicts == {"uncertainty": None}
    assert "| uncertainty | not run | not run | undecided |" in report


def test_no_constant_means_no_oracle(tmp_path):
    path = write_setting(tmp_path / "c.json", {"baseline": variant([13, 14, 15], [12, 13, 14]),
                                               "mfcon_grad_ratio": variant([9, 10, 11], [9, 10, 11])})
    report, verdicts = weighting_table.format_report([weighting_table.load_setting(f"C={path}")],
                                                     ["grad_ratio"])
    assert verdicts == {"grad_ratio": None}
    assert "(oracle)" not in report


def test_bad_input(tmp_path):
    with pytest.raises(UserError, match="expected NAME=comparison.json"):
        weighting_table.load_setting("no_equals_sign")
    with pytest.raises(UserError, match="cannot read"):
        weighting_table.load_setting(f"X={tmp_path}/missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"variants": {}}))
    with pytest.raises(UserError, match="no baseline variant"):
        weighting_table.load_setting(f"X={tmp_path}/bad.json")
