"""fastce.dask.profile against fastce.profile: a script, not a test.

    python bench/bench_dask.py [--rows 1000000] [--classes 100] [--dir /tmp]

Times the same profile (label issues included) of N x C float32 logits with
10% noisy labels, read from a .npy on disk: in-process (fastce.profile), on a
LocalCluster of 1 worker x 2 threads and of 2 workers x 1 thread (a dask array
from the .npy, blocks of about 64 MiB read on the workers). Checks that every
report is bitwise the in-process one, and prints the per-block cost, the size
of an accumulator's state, and a paper estimate for 100 workers on 1 TB.
"""
import argparse
import math
import os
import pickle
import time

import numpy as np

import fastce
from fastce.profiling import DEFAULT_CHUNK_BYTES, ProfileAccumulator


def make_data(directory, n_rows, n_classes, seed=0):
    rng = np.random.default_rng(seed)
    path_x = os.path.join(directory, f"bench_dask_logits_{n_rows}x{n_classes}.npy")
    path_y = os.path.join(directory, f"bench_dask_labels_{n_rows}.npy")
    if not (os.path.exists(path_x) and os.path.exists(path_y)):
        labels = rng.integers(0, n_classes, n_rows)
        logits = np.lib.format.open_memmap(path_x, mode="w+", dtype=np.float32,
                                           shape=(n_rows, n_classes))
        step = 100_000
        for start in range(0, n_rows, step):
            stop = min(start + step, n_rows)
            block = rng.standard_normal((stop - start, n_classes), dtype=np.float32) * 2
            block[np.arange(stop - start), labels[start:stop]] += 8.0
            logits[start:stop] = block
        logits.flush()
        del logits
        noisy = rng.random(n_rows) < 0.1
        labels[noisy] = rng.integers(0, n_classes, int(noisy.sum()))
        np.save(path_y, labels)
    return path_x, path_y


def timed(function, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def state_bytes(n_classes, rows=20_000):
    rng = np.random.default_rng(1)
    accumulator = ProfileAccumulator()
    accumulator.update(rng.standard_normal((rows, n_classes)).astype(np.float32),
                       rng.integers(0, n_classes, rows))
    return len(pickle.dumps(accumulator, protocol=pickle.HIGHEST_PROTOCOL))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import distributed

    import fastce.dask

    path_x, path_y = make_data(args.dir, args.rows, args.classes)
    row_bytes = args.classes * 4
    block_rows = DEFAULT_CHUNK_BYTES // row_bytes
    n_blocks = math.ceil(args.rows / block_rows)
    print(f"data: {args.rows} x {args.classes} float32 logits ({args.rows * row_bytes / 1e6:.0f} "
          f"MB, on disk, page cache warm after the first run); blocks of {block_rows} rows "
          f"(64 MiB): {n_blocks} blocks")

    # Warm the page cache, then the in-process profile (OpenMP on every core).
    fastce.profile(path_x, path_y, progress=False)
    seconds, expected = timed(lambda: fastce.profile(path_x, path_y, progress=False),
                              args.repeats)
    expected = expected.to_dict()
    results = {"in-process fastce.profile": seconds}
    print(f"in-process fastce.profile: {seconds:.3f} s "
          f"({args.rows * row_bytes / seconds / 1e9:.2f} GB/s), "
          f"{len(expected['label_issues']['index'])} label issues")

    for n_workers, threads in ((1, 2), (2, 1)):
        cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads,
                                           processes=True, host="127.0.0.1",
                                           dashboard_address=None)
        with distributed.Client(cluster):
            variants = [("worker threads (rule)", None)]
            if threads > 1:
                variants.append(("n_threads=1 a task", 1))
            for label, n_threads in variants:
                def run():
                    return fastce.dask.profile(path_x, path_y, n_threads=n_threads)
                run()  # warm: workers import fastce, page cache
                seconds, report = timed(run, args.repeats)
                assert report.to_dict() == expected, "the Dask report differs"
                name = f"dask {n_workers} worker(s) x {threads} thread(s), {label}"
                results[name] = seconds
                print(f"{name}: {seconds:.3f} s ({args.rows * row_bytes / seconds / 1e9:.2f} "
                      "GB/s), report bitwise equal")
        cluster.close()

    # Per block: the first pass (update) and the second (find_label_issues), 1 thread.
    block = np.ascontiguousarray(np.load(path_x, mmap_mode="r")[:block_rows])
    labels = np.load(path_y)[:block_rows]
    full = ProfileAccumulator()
    full.update(block, labels)
    thresholds = full.label_issue_thresholds()
    update_s, _ = timed(lambda: ProfileAccumulator().update(block, labels, n_threads=1), 3)
    issues_s, _ = timed(lambda: full.find_label_issues(block, labels, thresholds=thresholds,
                                                       n_threads=1), 3)
    states = {c: state_bytes(c) for c in (10, 100, 1000)}
    merge_acc = [ProfileAccumulator().update(block[:50_000], labels[:50_000]) for _ in range(8)]
    merge_s, _ = timed(lambda: [ProfileAccumulator().merge(a) for a in merge_acc], 3)
    merge_s /= len(merge_acc)
    block_mib = block.nbytes / 2**20
    print(f"per 64 MiB block ({block_rows} rows), 1 thread: update {update_s * 1e3:.1f} ms, "
          f"find_label_issues {issues_s * 1e3:.1f} ms "
          f"({block_mib / 1024 / (update_s + issues_s):.2f} GiB/s for both passes)")
    print(f"merge of one C=100 accumulator: {merge_s * 1e3:.2f} ms")
    for c, size in states.items():
        print(f"pickled ProfileAccumulator state, C={c}: {size / 1024:.1f} KiB")

    # Paper estimate: 100 workers, 1 TB zarr store of float32 (N, 100) logits.
    total_bytes, workers, bandwidth = 1e12, 100, 0.5e9
    blocks = total_bytes / DEFAULT_CHUNK_BYTES
    depth = math.ceil(math.log(blocks, 8))
    read_s = 2 * total_bytes / (workers * bandwidth)  # two passes
    compute_s = blocks * (update_s + issues_s) / workers
    state = states[100]
    merge_total_s = depth * (8 * state / 1e9 + 8 * merge_s)  # 8 states a merge, per level
    print(f"paper estimate, 1 TB zarr, 100 workers x 1 thread at {bandwidth / 1e9:.1f} GB/s "
          f"read each, two passes: {blocks:.0f} blocks of 64 MiB; reading {read_s:.0f} s; "
          f"compute {compute_s:.0f} s (hidden under reading when it is slower); merge tree "
          f"depth {depth} x (8 x {state / 1024:.0f} KiB at 1 GB/s + 8 merges) = "
          f"{merge_total_s:.2f} s; total about {max(read_s, compute_s) + merge_total_s:.0f} s")


if __name__ == "__main__":
    main()
