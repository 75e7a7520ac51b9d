"""Generated test data: the synthetic speech corpus and its noise/RIR set (demo and tests only)."""
