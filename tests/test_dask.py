"""fastce.dask on a real distributed cluster (2 worker processes, 1 thread each).

The profile must be bitwise the in-memory report (to_dict() ==) for every
chunking, with and without weights, for every task; the losses must equal the
in-memory calls to 1e-12; a bad label must raise fastce.profile's ValueError
(global row) on the client; a worker killed mid-run must not change a bit; path
inputs are read on the workers; and the CLI's --dask-workers runs end to end.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
import dask.array as da  # noqa: E402

import fastce  # noqa: E402
import fastce.dask as fdask  # noqa: E402

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastce.__file__)))


@pytest.fixture(scope="module")
def client():
    # distributed's nannies write OMP_NUM_THREADS=1 (and MKL_, OPENBLAS_) into this
    # process's environment for good; restore it afterwards so that the processes
    # later tests start see the machine's thread settings.
    saved_environment = dict(os.environ)
    # Workers are spawned processes: they import fastce from where this process does.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       worker_class=distributed.Nanny)
    client = distributed.Client(cluster, timeout=60)
    try:
        client.wait_for_workers(2, timeout=60)
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)
        os.environ.clear()
        os.environ.update(saved_environment)


def _multiclass(n=5000, c=7, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    logits = (rng.standard_normal((n, c)) * 2).astype(dtype)
    logits[np.arange(n), labels] += 2.0  # a decent model...
    noisy = rng.random(n) < 0.1  # ...with 10% noisy labels
    labels[noisy] = rng.integers(0, c, noisy.sum())
    return logits, labels, rng.uniform(0.0, 2.0, n)


def _inputs(task, kind, seed=0):
    rng = np.random.default_rng(seed)
    logits, labels, weight = _multiclass(seed=seed)
    if task == "binary":
        logits, labels = logits[:, 0] - logits[:, 1], (labels == 0).astype(np.int64)
    elif task == "multilabel":
        labels = (rng.random(logits.shape) < 0.3).astype(np.int64)
    if kind == "probs":
        if task == "multiclass":
            logits = fastce.softmax(logits)
        else:
            logits = fastce.sigmoid(logits)
    return logits, labels, weight


@pytest.mark.parametrize("task,kind", [("multiclass", "logits"), ("multiclass", "probs"),
                                       ("binary", "logits"), ("binary", "probs"),
                                       ("multilabel", "logits"), ("multilabel", "probs")])
@pytest.mark.parametrize("weighted", [False, True])
def test_profile_bitwise_equal_any_chunking(client, task, kind, weighted):
    predictions, labels, weight = _inputs(task, kind)
    sample_weight = weight if weighted else None
    expected = fastce.profile(predictions, labels, kind=kind, task=task,
                              sample_weight=sample_weight, top_k=20).to_dict()
    if task != "multilabel":
        assert expected["label_issues"]["index"]  # the second pass has work to do
    for rows in (1000, 777, len(labels)):
        other = {i: 3 for i in range(1, predictions.ndim)}  # the class axis gets rechunked
        dask_predictions = da.from_array(predictions, chunks={0: rows, **other})
        dask_labels = da.from_array(labels, chunks=500)  # rechunked to the predictions' rows
        dask_weight = None if sample_weight is None else da.from_array(sample_weight,
                                                                       chunks=333)
        report = fdask.profile(dask_predictions, dask_labels, kind=kind, task=task,
                               sample_weight=dask_weight, top_k=20, split_every=3)
        assert report.to_dict() == expected, (rows, task, kind, weighted)


def test_profile_numpy_inputs_and_keywords(client):
    logits, labels, _ = _multiclass(c=12)
    names = [f"class {i}" for i in range(12)]
    keywords = dict(n_bins=7, top_k=5, confusion_max_classes=4, class_names=names,
                    label_issues=False)
    expected = fastce.profile(logits, labels, **keywords).to_dict()
    assert fdask.profile(logits, labels, chunk_size=999, **keywords).to_dict() == expected
    assert fdask.profile(logits, labels, split_every=2, **keywords).to_dict() == expected


def test_profile_threaded_scheduler(client):
    logits, labels, weight = _multiclass()
    expected = fastce.profile(logits, labels, sample_weight=weight).to_dict()
    with dask.config.set(scheduler="threads"):
        report = fdask.profile(da.from_array(logits, chunks=(600, 7)), labels,
                               sample_weight=weight)
    assert report.to_dict() == expected


def test_thread_rule(client):
    # One OpenMP thread a task on a distributed worker and in a threaded-scheduler task;
    # in the calling thread (synchronous scheduler): None (OpenMP's default).
    assert set(client.run(fdask._task_threads, None).values()) == {1}
    assert client.submit(fdask._task_threads, None, pure=False).result() == 1
    assert client.submit(fdask._task_threads, 3, pure=False).result() == 3
    task = dask.delayed(fdask._task_threads, pure=False)(None)
    assert task.compute(scheduler="threads") == 1
    assert task.compute(scheduler="sync") is None


def test_bad_label_raises_global_row_on_client(client):
    logits, labels, _ = _multiclass()
    labels[3456] = 99
    with pytest.raises(ValueError) as expected:
        fastce.profile(logits, labels)
    assert "row 3456" in str(expected.value)
    for rows in (1000, 777):
        with pytest.raises(ValueError) as got:
            fdask.profile(da.from_array(logits, chunks=(rows, 7)), labels)
        assert str(got.value) == str(expected.value)
    # Two bad blocks: the first bad row is reported, as fastce.profile does.
    labels[4999] = -1
    with pytest.raises(ValueError) as got:
        fdask.profile(da.from_array(logits, chunks=(500, 7)), labels)
    assert str(got.value) == str(expected.value)
    weight = np.ones(len(labels))
    weight[10] = -1.0
    labels[[3456, 4999]] = 0
    with pytest.raises(ValueError, match="row 10"):
        fdask.profile(da.from_array(logits, chunks=(7, 7)), labels, sample_weight=weight)
    with pytest.raises(ValueError, match="has 4999 rows"):
        fdask.profile(logits, labels[:-1])


def _slow_blocks(x):
    return x.map_blocks(_slow_copy, dtype=x.dtype)


def _slow_copy(block):
    time.sleep(0.06)
    return block.copy()


def test_worker_killed_mid_profile(client):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _slow_copy on workers
    logits, labels, weight = _multiclass(n=6000)
    expected = fastce.profile(logits, labels, sample_weight=weight).to_dict()
    predictions = _slow_blocks(da.from_array(logits, chunks=(100, 7)))  # 60 blocks, ~2 s
    result, failure = {}, []

    def run():
        try:
            result["report"] = fdask.profile(predictions, labels, sample_weight=weight)
        except BaseException as error:  # noqa: BLE001 - reported below
            failure.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.8)
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    assert worker.is_alive()  # the profile is still running
    os.kill(victim, signal.SIGKILL)  # the nanny starts a new worker; Dask reruns the lost tasks
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert not failure, failure
    assert result["report"].to_dict() == expected
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.run(os.getpid).values()


def test_path_inputs_read_on_workers(client, tmp_path):
    zarr = pytest.importorskip("zarr")
    h5py = pytest.importorskip("h5py")
    logits, labels, weight = _multiclass(n=4000, dtype=np.float32)
    expected = fastce.profile(logits, labels, sample_weight=weight).to_dict()
    np.save(tmp_path / "logits.npy", logits)
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "weight.npy", weight)
    stored = zarr.open_array(str(tmp_path / "logits.zarr"), mode="w", shape=logits.shape,
                             dtype=logits.dtype, chunks=(500, 7))
    stored[:] = logits
    with h5py.File(tmp_path / "data.h5", "w") as handle:
        handle.create_dataset("logits", data=logits, chunks=(250, 7))
        handle.create_dataset("labels", data=labels)
    npy = str(tmp_path / "logits.npy")
    for predictions, label_path in [(npy, str(tmp_path / "labels.npy")),
                                    (str(tmp_path / "logits.zarr"), str(tmp_path / "labels.npy")),
                                    (str(tmp_path / "data.h5") + ":logits",
                                     str(tmp_path / "data.h5") + ":labels")]:
        for chunk_size in (None, 900):
            report = fdask.profile(predictions, label_path, chunk_size=chunk_size,
                                   sample_weight=str(tmp_path / "weight.npy"))
            assert report.to_dict() == expected, predictions
    # The client reads the header only: the graph holds paths and row ranges, no data.
    lazy = fdask._open_lazy(npy, chunk_rows=500)
    assert lazy.numblocks == (8, 1)
    assert len(pickle.dumps(dict(lazy.__dask_graph__()))) < logits.nbytes / 10
    # Errors name the file, as fastce.profile's do.
    bad = labels.copy()
    bad[2500] = 7
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError) as expected_error:
        fastce.profile(npy, str(tmp_path / "bad.npy"))
    with pytest.raises(ValueError) as got:
        fdask.profile(npy, str(tmp_path / "bad.npy"), chunk_size=1000)
    assert str(got.value) == str(expected_error.value)
    assert "bad.npy" in str(got.value) and "row 2500" in str(got.value)
    with pytest.raises(FileNotFoundError):
        fdask.profile(str(tmp_path / "missing.npy"), labels)


def _close(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * scale)


def _check_loss(function, logits, target, dask_logits, dask_target, **keywords):
    expected = getattr(fastce, function)(logits, target, **keywords)
    lazy = getattr(fdask, function)(dask_logits, dask_target, **keywords)
    lazy = lazy if isinstance(lazy, tuple) else (lazy,)
    assert all(isinstance(item, da.Array) for item in lazy)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = dask.compute(*lazy)
    for got_item, expected_item, lazy_item in zip(got, expected, lazy):
        _close(got_item, expected_item)
        if np.ndim(expected_item):
            assert lazy_item.chunks[0] == dask_logits.chunks[0]  # the input's row blocks


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("return_grad", [False, True])
def test_cross_entropy_matches_in_memory(client, reduction, return_grad):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3000, 9)) * 3
    target = rng.integers(0, 9, 3000)
    target[::7] = -100
    target[1000:2000] = -100  # the block 1000:2000 is all ignored
    weight = rng.uniform(0.2, 2.0, 9)
    x = da.from_array(logits, chunks=(1000, 9))
    ignore_four = np.where(target == -100, 4, target)
    for keywords, labels in ((dict(), target),
                             (dict(weight=weight, label_smoothing=0.1), target),
                             (dict(weight=weight, ignore_index=4), ignore_four)):
        _check_loss("cross_entropy", logits, labels, x, da.from_array(labels, chunks=300),
                    reduction=reduction, return_grad=return_grad, **keywords)
    # Probability targets and a class axis that is not last (torch's layout).
    probs = rng.dirichlet(np.ones(9), 3000)
    _check_loss("cross_entropy", logits, probs, da.from_array(logits, chunks=(777, 9)), probs,
                reduction=reduction, return_grad=return_grad, weight=weight)
    spatial = rng.standard_normal((40, 9, 11))
    spatial_target = rng.integers(0, 9, (40, 11))
    _check_loss("cross_entropy", spatial, spatial_target,
                da.from_array(spatial, chunks=(13, 4, 5)), spatial_target, axis=1,
                reduction=reduction, return_grad=return_grad)


def test_cross_entropy_hessian_and_all_ignored(client):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((2000, 6))
    target = rng.integers(0, 6, 2000)
    x = da.from_array(logits, chunks=(300, 6))
    _check_loss("cross_entropy", logits, target, x, target, return_hessian=True,
                weight=rng.uniform(0.5, 1.5, 6))
    ignored = np.full(2000, -100)
    for reduction in ("mean", "sum"):
        loss, grad = fdask.cross_entropy(x, ignored, reduction=reduction, return_grad=True)
        assert loss.compute() == 0.0 and not np.any(grad.compute())
    with pytest.raises(ValueError, match="outside"):
        bad = target.copy()
        bad[1500] = 6
        fdask.cross_entropy(x, bad).compute()
    with pytest.raises(ValueError, match="grad_out"):
        fdask.cross_entropy(x, target, return_grad=True, grad_out=logits)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_matches_in_memory(client, reduction):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2500, 6)) * 4
    target = rng.random((2500, 6))
    x = da.from_array(logits, chunks=(700, 4))
    for keywords in (dict(), dict(weight=rng.uniform(0, 2, 6), pos_weight=rng.uniform(0.5, 3, 6)),
                     dict(weight=rng.uniform(0, 2, (2500, 1))),
                     dict(weight=da.from_array(rng.uniform(0, 2, (2500, 6)), chunks=500))):
        for return_grad in (False, True):
            _check_loss("binary_cross_entropy_with_logits", logits, target, x,
                        da.from_array(target, chunks=(1000, 6)), reduction=reduction,
                        return_grad=return_grad, **keywords)
    _check_loss("binary_cross_entropy_with_logits", logits[:, 0], target[:, 0],
                da.from_array(logits[:, 0], chunks=333), target[:, 0], reduction=reduction,
                return_hessian=True)


def test_cli_dask_workers(tmp_path):
    logits, labels, _ = _multiclass(n=3000)
    np.save(tmp_path / "logits.npy", logits)
    np.save(tmp_path / "labels.npy", labels)
    expected = json.loads(fastce.profile(logits, labels).to_json())
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-m", "fastce", "profile", str(tmp_path / "logits.npy"),
         str(tmp_path / "labels.npy"), "--dask-workers", "2", "--chunk-size", "700",
         "--out", str(tmp_path / "out"), "--no-progress"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / "out" / "report.json", encoding="utf-8") as handle:
        assert json.load(handle) == expected
    both = subprocess.run(
        [sys.executable, "-m", "fastce", "profile", "a.npy", "b.npy", "--dask", "x:1",
         "--dask-workers", "2"], cwd=tmp_path, env=environment, capture_output=True,
        text=True, timeout=60)
    assert both.returncode == 2 and "not allowed with" in both.stderr
