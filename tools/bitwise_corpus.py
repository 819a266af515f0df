"""Hash the outputs of a fixed corpus of calls, to prove a refactor changes no bit.

    FASTCE_SIMD=avx512 python tools/bitwise_corpus.py > before-avx512.json
    ... change the code, rebuild ...
    FASTCE_SIMD=avx512 python tools/bitwise_corpus.py --compare before-avx512.json

Every public kernel-backed function runs on seeded inputs that take it through
its paths (short rows, long rows, column tiles, masks, weights, special values,
both dtypes, one and two threads); each result's bytes are hashed.
"""
import argparse
import hashlib
import json
import sys

import numpy as np

import fastce
import fastce.linear


def _digest(result):
    hasher = hashlib.sha256()
    parts = result if isinstance(result, tuple) else (result,)
    for part in parts:
        array = np.ascontiguousarray(np.asarray(part))
        hasher.update(str(array.dtype).encode() + str(array.shape).encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()[:16]


def _inputs(dtype):
    rng = np.random.default_rng(12345)
    values = {}
    for name, shape in {"short": (3000, 10), "mid": (700, 300), "wide": (5, 70000),
                        "block": (40, 17000)}.items():
        logits = (4 * rng.standard_normal(shape)).astype(dtype)
        logits.flat[::97] = -np.inf
        logits.flat[5] = 1e4
        labels = rng.integers(0, shape[1], shape[0])
        labels[::11] = -100
        values[name] = (logits, labels)
    spatial = (3 * rng.standard_normal((6, 9, 700))).astype(dtype)
    values["spatial"] = (spatial, rng.integers(0, 9, (6, 700)))
    binary = (5 * rng.standard_normal(200003)).astype(dtype)
    binary[::501] = np.inf
    binary[1::501] = -np.inf
    values["binary"] = (binary, (rng.random(200003) > 0.5).astype(dtype))
    return rng, values


def corpus():
    results = {}
    for dtype in (np.float32, np.float64):
        rng, values = _inputs(dtype)
        tag = np.dtype(dtype).name
        for name in ("short", "mid", "wide", "block"):
            logits, labels = values[name]
            n_classes = logits.shape[1]
            class_weight = rng.random(n_classes) + 0.1
            probs = rng.dirichlet(np.ones(n_classes), logits.shape[0]).astype(dtype)
            sample_weight = rng.random(logits.shape[0])
            keep = rng.random(logits.shape) > 0.2
            for threads in (1, 2):
                key = f"{tag}/{name}/t{threads}"
                calls = {
                    "ce": lambda: fastce.cross_entropy(logits, labels, return_grad=True,
                                                       n_threads=threads),
                    "ce-none-smooth-w": lambda: fastce.cross_entropy(
                        logits, labels, weight=class_weight, label_smoothing=0.1,
                        reduction="none", return_hessian=True, n_threads=threads),
                    "ce-sw-where": lambda: fastce.cross_entropy(
                        logits, labels, sample_weight=sample_weight, where=keep,
                        return_grad=True, n_threads=threads),
                    "ce-probs": lambda: fastce.cross_entropy(
                        logits, probs, label_smoothing=0.05, return_grad=True,
                        n_threads=threads),
                    "kl-logits": lambda: fastce.kl_divergence_with_logits(
                        probs, logits, sample_weight=sample_weight, return_grad=True,
                        n_threads=threads),
                    "log_softmax": lambda: fastce.log_softmax(logits, n_threads=threads),
                    "softmax": lambda: fastce.softmax(logits, n_threads=threads),
                    "logsumexp": lambda: fastce.logsumexp(logits, n_threads=threads),
                    "lse-b": lambda: fastce.logsumexp(logits, b=probs, return_sign=True,
                                                      n_threads=threads),
                    "nll": lambda: fastce.nll_loss(logits, labels, return_grad=True,
                                                   n_threads=threads),
                    "entropy": lambda: fastce.entropy(probs, n_threads=threads),
                    "kl": lambda: fastce.kl_divergence(probs, probs[::-1], n_threads=threads),
                    "js": lambda: fastce.js_divergence(probs, probs[::-1], n_threads=threads),
                }
                for call, function in calls.items():
                    results[f"{key}/{call}"] = _digest(function())
        spatial, spatial_labels = values["spatial"]
        results[f"{tag}/spatial/ce"] = _digest(fastce.cross_entropy(
            spatial, spatial_labels, axis=1, return_hessian=True))
        results[f"{tag}/spatial/softmax"] = _digest(fastce.softmax(spatial, axis=1))
        results[f"{tag}/spatial/nll"] = _digest(fastce.nll_loss(
            spatial, spatial_labels, axis=1, return_grad=True))
        x, y = values["binary"]
        pos_weight = rng.random(x.shape).astype(dtype) + 0.5
        keep = rng.random(x.shape) > 0.1
        for threads in (1, 2):
            key = f"{tag}/binary/t{threads}"
            for call, function in {
                "bce": lambda: fastce.binary_cross_entropy_with_logits(
                    x, y, return_hessian=True, n_threads=threads),
                "bce-fwd": lambda: fastce.binary_cross_entropy_with_logits(
                    x, y, n_threads=threads),
                "bce-fwd-none": lambda: fastce.binary_cross_entropy_with_logits(
                    x, y, reduction="none", n_threads=threads),
                "focal-fwd": lambda: fastce.sigmoid_focal_loss(x, y, n_threads=threads),
                "bce-pw-where": lambda: fastce.binary_cross_entropy_with_logits(
                    x, y, pos_weight=pos_weight, where=keep, return_grad=True,
                    n_threads=threads),
                "bce-probs": lambda: fastce.binary_cross_entropy(
                    fastce.sigmoid(x), y, return_grad=True, n_threads=threads),
                "logistic": lambda: fastce.logistic_loss(x, 2 * y - 1, return_hessian=True,
                                                         n_threads=threads),
                "focal": lambda: fastce.sigmoid_focal_loss(x, y, return_grad=True,
                                                           n_threads=threads),
                "sigmoid": lambda: fastce.sigmoid(x, n_threads=threads),
                "log_sigmoid": lambda: fastce.log_sigmoid(x, n_threads=threads),
                "kl_div": lambda: fastce.kl_div(-np.abs(x), np.abs(y), return_grad=True,
                                                n_threads=threads),
            }.items():
                results[f"{key}/{call}"] = _digest(function())
        features = rng.standard_normal((5000, 40)).astype(dtype)
        coef = rng.standard_normal(40).astype(dtype)
        results[f"{tag}/linear/logistic"] = _digest(fastce.linear.logistic_regression_loss(
            features, (rng.random(5000) > 0.5).astype(dtype), coef, return_grad=True))
        report = fastce.profile(values["short"][0], np.where(values["short"][1] < 0, 0,
                                                             values["short"][1]))
        results[f"{tag}/profile"] = hashlib.sha256(
            json.dumps(report.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", help="a JSON file written by an earlier run")
    arguments = parser.parse_args()
    results = corpus()
    results["_simd"] = fastce.show_config(print_out=False)["simd"]
    if not arguments.compare:
        json.dump(results, sys.stdout, indent=1, sort_keys=True)
        return 0
    with open(arguments.compare) as handle:
        before = json.load(handle)
    changed = sorted(key for key in before if before[key] != results.get(key))
    print(f"{len(before) - 1} outputs compared ({results['_simd']}); "
          f"{len(changed)} differ" + (": " + ", ".join(changed) if changed else ""))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
