"""Research tools, not recipe stages: per-block EER, multi-seed comparisons and studies, the
docs tables rendered from result JSON (report, tables, speed_tables), and what the speed
benchmarks (benchmarks/) measure through: benchmarking (the record), train_step, shard_batching,
onnx_profile."""
