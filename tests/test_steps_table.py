"""analysis/steps_table.py: the post-training steps, mean ± std over seeds."""

import json

import pytest

from wespeaker_mfcon.analysis import steps_table
from wespeaker_mfcon.utils.errors import UserError


def write_run(path, systems):
    (path / "scores").mkdir(parents=True)
    (path / "scores" / "results.json").write_text(json.dumps({"trials": systems}))


def metrics(eer, cllr=None):
    m = {"eer": eer, "min_dcf_0.01": eer / 10.0}
    if cllr is not None:
        m.update(cllr=cllr, min_cllr=cllr / 2.0)
    return m


def test_rows_read_the_right_runs_and_systems(tmp_path, capsys):
    for seed, shift in ((1, 0.0), (2, 2.0)):
        write_run(tmp_path / f"sys/seed{seed}", {
            "cosine": metrics(10 + shift), "cosine_plain": metrics(99, 0.6 + shift / 10),
            "asnorm": metrics(9 + shift), "asnorm_plain": metrics(99, 0.5 + shift / 10)})
        write_run(tmp_path / f"sys/seed{seed}_lm", {
            "asnorm": metrics(8 + shift), "asnorm_plain": metrics(99, 0.4 + shift / 10),
            "asnorm_qmf": metrics(7 + shift, 0.3 + shift / 10)})
    out = tmp_path / "t.md"
    steps_table.main(["--system", f"S={tmp_path}/sys", "--seeds", "1", "2", "--out", str(out)])
    rows = [l for l in out.read_text().splitlines() if l.startswith("| S |")]
    # EER mean of (10, 12) = 11, std (ddof 1) = 1.414; Cllr of cosine_plain (0.6, 0.8)
    assert rows[0] == "| S | base | 11.00 ± 1.41 | 1.100 ± 0.141 | 0.700 ± 0.141 | 0.350 ± 0.071 |"
    assert rows[1].startswith("| S | + AS-norm | 10.00 ± 1.41 |")
    assert rows[2].startswith("| S | + LM | 9.00 ± 1.41 |") and "0.500 ± 0.141" in rows[2]
    assert rows[3] == "| S | + QMF | 8.00 ± 1.41 | 0.800 ± 0.141 | 0.400 ± 0.141 | 0.200 ± 0.071 |"
    assert json.loads((tmp_path / "t.md.json").read_text())["S"]["+ QMF"]["eer"]["n"] == 2
    assert capsys.readouterr().out == out.read_text()


def test_a_run_without_calibration_is_a_clear_error(tmp_path):
    write_run(tmp_path / "sys/seed1", {"cosine": metrics(10), "asnorm": metrics(9)})
    with pytest.raises(UserError, match=r"seed1: no cllr for cosine_plain \(run stage 7"):
        steps_table.main(["--system", f"S={tmp_path}/sys", "--seeds", "1"])
