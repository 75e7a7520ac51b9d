"""EER / minDCF against values computed by hand, plus a large-sample Gaussian check."""

import numpy as np
import pytest
from scipy.stats import norm

from wespeaker_mfcon.scoring.results import format_table
from wespeaker_mfcon.scoring.metrics import evaluate
from wespeaker_mfcon.scoring.metrics import compute_eer, compute_min_dcf, det_curve

# Ten trials, 4 target (T) / 6 nontarget (N), listed in ascending score order:
#   0.05 N, 0.10 N, 0.20 T, 0.30 N, 0.35 N, 0.40 T, 0.50 N, 0.60 T, 0.70 N, 0.90 T
# Rejecting the i lowest scores gives (FNR, FPR):
#   i :  0     1     2     3     4     5     6     7     8     9     10
#   FNR: 0     0     0     1/4   1/4   1/4   2/4   2/4   3/4   3/4   1
#   FPR: 1     5/6   4/6   4/6   3/6   2/6   2/6   1/6   1/6   0     0
# FNR - FPR first becomes >= 0 at i=6 (0.5 - 1/3); between i=5 and i=6 FPR stays 1/3 while
# FNR goes 1/4 -> 1/2, so the interpolated crossing is at EER = 1/3, threshold = 0.40.
# minDCF = min_i (p*FNR + (1-p)*FPR) / min(p, 1-p):
#   p=0.01 -> min_i FNR + 99*FPR: i=9 gives 0.75 + 0 = 0.75 (i=10: 1, i=7: 0.5 + 16.5 = 17)
#   p=0.5  -> min_i FNR + FPR: i=5 gives 1/4 + 1/3 = 7/12 (i=4: 3/4, i=7: 2/3, i=9: 3/4)
#   p=0.25 -> min_i FNR + 3*FPR: i=9 gives 0.75 (i=7: 0.5 + 0.5 = 1.0, i=5: 1.25)
SCORES = np.array([0.60, 0.05, 0.40, 0.90, 0.30, 0.10, 0.70, 0.20, 0.50, 0.35])
LABELS = np.array([1, 0, 1, 1, 0, 0, 0, 1, 0, 0])


def test_eer_hand_computed():
    eer, thr = compute_eer(SCORES, LABELS)
    assert eer == pytest.approx(1 / 3, abs=1e-12)
    assert thr == pytest.approx(0.40)


def test_min_dcf_hand_computed():
    assert compute_min_dcf(SCORES, LABELS, p_target=0.01) == pytest.approx(0.75)
    assert compute_min_dcf(SCORES, LABELS, p_target=0.5) == pytest.approx(7 / 12)
    assert compute_min_dcf(SCORES, LABELS, p_target=0.25) == pytest.approx(0.75)
    # c_miss=2, p=0.5: min_i (FNR + 0.5*FPR)/0.5 ... c_def=min(2*.5, .5)=.5 ->
    # min_i 2*FNR + FPR: i=2 gives 0 + 4/6; i=5: 0.5 + 1/3 = 0.833; i=0: 1 -> 2/3
    assert compute_min_dcf(SCORES, LABELS, p_target=0.5, c_miss=2.0) == pytest.approx(2 / 3)


def test_eer_interpolates_between_levels():
    # Ascending: 0.1 T, 0.2 N, 0.3 T, 0.4 N  (2 T / 2 N)
    #  i: 0: (0, 1)  1: (1/2, 1)  2: (1/2, 1/2) -> diff 0 at i=2, lo=1
    #  segment i=1 -> 2: FNR stays 1/2, FPR 1 -> 1/2, crossing at 1/2 -> EER 0.5
    eer, _ = compute_eer([0.3, 0.1, 0.4, 0.2], [1, 1, 0, 0])
    assert eer == pytest.approx(0.5)
    # Perfect separation: EER 0, minDCF 0; fully reversed: EER 1.
    assert compute_eer([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])[0] == pytest.approx(0.0)
    assert compute_min_dcf([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], 0.01) == pytest.approx(0.0)
    assert compute_eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])[0] == pytest.approx(1.0)


def test_eer_gaussian_large_sample():
    # Target ~ N(2, 1), nontarget ~ N(0, 1): EER = Phi(-1) = 0.15866.
    rng = np.random.default_rng(0)
    n = 100_000
    scores = np.concatenate([rng.normal(2, 1, n), rng.normal(0, 1, n)])
    labels = np.concatenate([np.ones(n, int), np.zeros(n, int)])
    eer, thr = compute_eer(scores, labels)
    assert eer == pytest.approx(norm.cdf(-1.0), abs=0.004)
    assert thr == pytest.approx(1.0, abs=0.03)
    # minDCF(p) for this pair: min over t of p*Phi(t-2) + (1-p)*(1-Phi(t)), over min(p, 1-p)
    t = np.linspace(-2, 6, 20001)
    for p in (0.01, 0.05):
        expect = np.min(p * norm.cdf(t - 2) + (1 - p) * norm.sf(t)) / p
        assert compute_min_dcf(scores, labels, p) == pytest.approx(expect, abs=0.03)


def test_det_curve_monotone_and_ends():
    fpr, fnr = det_curve(SCORES, LABELS)
    assert fpr[0] == 1 and fnr[0] == 0 and fpr[-1] == 0 and fnr[-1] == 1
    assert np.all(np.diff(fpr) <= 0) and np.all(np.diff(fnr) >= 0)


def test_evaluate_and_table():
    res = evaluate(SCORES, LABELS.astype(np.int8), (0.01, 0.05))
    assert res["eer"] == pytest.approx(100 / 3, abs=1e-5)  # percent
    assert res["min_dcf_0.01"] == pytest.approx(0.75)
    # p=0.05 -> min_i FNR + 19*FPR: i=9 gives 0.75 (i=7: 0.5 + 19/6 = 3.67)
    assert res["min_dcf_0.05"] == pytest.approx(0.75)
    assert (res["num_trials"], res["num_target"], res["num_nontarget"]) == (10, 4, 6)
    table = format_table([("vox1_O", "cosine", res)], (0.01, 0.05))
    lines = table.splitlines()
    assert lines[0].split() == ["trials", "system", "EER(%)", "minDCF0.01", "minDCF0.05"]
    assert lines[2].split() == ["vox1_O", "cosine", "33.333", "0.7500", "0.7500"]
    with pytest.raises(ValueError, match="both target and nontarget"):
        evaluate(SCORES, np.ones(10, np.int8))
