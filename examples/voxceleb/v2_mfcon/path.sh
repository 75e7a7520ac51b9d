# Environment for the recipe: the package from this checkout, one BLAS thread per process.
export PYTHONPATH=$(cd ../../.. && pwd):${PYTHONPATH:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONUNBUFFERED=1
export LC_ALL=C
