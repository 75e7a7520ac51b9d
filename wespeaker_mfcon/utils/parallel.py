"""An ordered map over spawned worker processes with a progress bar: the one way the package
spreads per-file work over --nj processes (stage 0's audio scan, shard writing, the mini corpus).
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from tqdm import tqdm


def parallel_map(fn, items, nj, desc, unit="item", progress=True):
    """[fn(x) for x in items], in input order whatever nj, in up to nj spawned processes (nj 1:
    in this process). fn must be picklable (a module-level function or a partial of one), and a
    script that calls this with nj > 1 needs the `if __name__ == "__main__":` guard."""
    items = list(items)
    nj = max(1, min(nj, len(items)))
    pool, results = None, map(fn, items)
    if nj > 1:
        pool = ProcessPoolExecutor(max_workers=nj, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(fn, items, chunksize=max(1, min(64, len(items) // (4 * nj))))
    out = []
    try:
        with tqdm(total=len(items), desc=desc, unit=unit, disable=None if progress else True,
                  mininterval=2) as bar:
            for result in results:
                out.append(result)
                bar.update(1)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out
