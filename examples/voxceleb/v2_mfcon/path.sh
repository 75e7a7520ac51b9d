# Environment for the recipe: the package from this checkout.
export PYTHONPATH=$(cd ../../.. && pwd):${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
export LC_ALL=C
