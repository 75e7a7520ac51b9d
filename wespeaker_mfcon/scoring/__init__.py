"""Stages 4 and 7: trial and score files, cosine scoring, AS-norm / S-norm, metrics, DET
plots, calibration and its trials."""
