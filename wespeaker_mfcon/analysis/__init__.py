"""Research tools, not recipe stages: per-block EER and multi-seed comparison tables."""
