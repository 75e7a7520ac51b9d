# Environment for the recipe: the package from this checkout.
export PYTHONPATH=$(cd ../../.. && pwd):${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
# OpenMP threads sleep instead of spinning while they wait: on a busy CPU, spinning threads of
# one process stall those of the others (a 2-thread training step was ~3x slower here, benchmarks/bench_train_step.py).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export LC_ALL=C
