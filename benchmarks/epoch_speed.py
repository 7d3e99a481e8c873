"""How much the reference autograd engine costs: one MNIST training epoch, autograd vs hand-written numpy.

    make bench      # = .venv/bin/python -m benchmarks.epoch_speed --out results/bench.json

Times one epoch of MLP3 784-256-128-10 (float32, He init, batch 64, plain SGD lr 0.1, the MNIST
train set) three ways, from the same initial weights and the same batch order:

- autograd:     solutions/autodiff's own loop, `train(model, ..., epochs=1)` (MLP3, CrossEntropyLoss, SGD);
- hand-written: the same network's forward and backward written directly in numpy (softmax and
                cross-entropy backward fused into (p - t) / N), SGD updating the arrays in place;
- PyTorch:      the same net on torch CPU autograd with as many threads as numpy's BLAS, only where
                `import torch` works (torch is not a dependency of the project; the row is skipped otherwise).

The sides are run alternately, `--repeats` times each, so that noise from a shared machine hits
all of them; the table reports each side's fastest and median epoch, and the ratios of the fastest.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "solutions"))

from autodiff.data import load_mnist  # noqa: E402
from autodiff.nn import MLP3  # noqa: E402
from autodiff.tensor import EPS  # noqa: E402
from autodiff.train import one_hot, prepare_images, train  # noqa: E402

BATCH, LR, SEED = 64, 0.1, 0


def initial_weights():
    """[(W, b), ...] of a fresh MLP3(seed=SEED): every side starts from copies of these."""
    return [(layer.weight.data.copy(), layer.bias.data.copy()) for layer in MLP3(seed=SEED).layers]


def autograd_epoch(images, labels):
    model = MLP3(seed=SEED)
    train(model, images, labels, epochs=1, batch_size=BATCH, lr=LR, seed=SEED)
    return [layer.weight.data for layer in model.layers]


def numpy_epoch(images, labels):
    (w1, b1), (w2, b2), (w3, b3) = initial_weights()
    targets = one_hot(labels)
    order = np.random.default_rng(SEED).permutation(len(images))  # train()'s first epoch order
    total_loss = 0.0
    for start in range(0, len(images), BATCH):
        batch = order[start:start + BATCH]
        x, t = images[batch], targets[batch]
        n = len(batch)
        z1 = x @ w1 + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ w2 + b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ w3 + b3
        e = np.exp(z3 - z3.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        total_loss += float(-np.sum(t * np.log(np.maximum(p, EPS))) / n) * n
        dz3 = (p - t) / np.float32(n)
        dh2 = dz3 @ w3.T
        dz2 = dh2 * (z2 > 0)
        dh1 = dz2 @ w2.T
        dz1 = dh1 * (z1 > 0)
        for param, grad in ((w3, h2.T @ dz3), (b3, dz3.sum(axis=0)), (w2, h1.T @ dz2),
                            (b2, dz2.sum(axis=0)), (w1, x.T @ dz1), (b1, dz1.sum(axis=0))):
            param -= np.float32(LR) * grad  # noqa: PLW2901  (in place)
    return [w1, w2, w3]


def torch_epoch(images, labels):
    import torch
    params = [torch.tensor(a, requires_grad=True) for layer in initial_weights() for a in layer]
    x_all, t_all = torch.from_numpy(images), torch.from_numpy(one_hot(labels))
    order = torch.from_numpy(np.random.default_rng(SEED).permutation(len(images)))
    for start in range(0, len(images), BATCH):
        batch = order[start:start + BATCH]
        x, t = x_all[batch], t_all[batch]
        w1, b1, w2, b2, w3, b3 = params
        p = torch.softmax(torch.relu(torch.relu(x @ w1 + b1) @ w2 + b2) @ w3 + b3, dim=1)
        loss = -(t * torch.log(torch.clamp(p, min=EPS))).sum() / len(batch)
        for param in params:
            param.grad = None
        loss.backward()
        with torch.no_grad():
            for param in params:
                param -= LR * param.grad  # noqa: PLW2901  (in place)
    return [params[i].detach().numpy() for i in (0, 2, 4)]


def blas_threads():
    """Threads numpy's BLAS uses: threadpoolctl's answer if installed, else OpenBLAS's default
    (OPENBLAS_NUM_THREADS or OMP_NUM_THREADS if set, otherwise every core)."""
    try:
        from threadpoolctl import threadpool_info
        return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")
    except (ImportError, ValueError):
        return int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or os.cpu_count())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="epochs timed per side (default 5)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    data = load_mnist()
    images, labels = prepare_images(data.train_images), data.train_labels
    threads = blas_threads()
    sides = {"autograd": autograd_epoch, "hand-written numpy": numpy_epoch}
    try:
        import torch
        torch.set_num_threads(threads)
        sides["PyTorch CPU"] = torch_epoch
        torch_note = f"torch {torch.__version__}, {threads} threads"
    except ImportError:
        torch_note = "skipped: torch is not installed (it is not a dependency)"

    final = {name: side(images, labels) for name, side in sides.items()}  # warm-up, and a sanity check
    for name, weights in list(final.items())[1:]:
        gap = max(float(np.max(np.abs(w - r))) for w, r in zip(weights, final["autograd"], strict=True))
        print(f"{name:>18}: largest difference from autograd's weights after the epoch {gap:.1e}")

    times = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, side in sides.items():
            started = time.perf_counter()
            side(images, labels)
            times[name].append(time.perf_counter() - started)

    baseline = min(times["hand-written numpy"])
    rows = {name: {"min_seconds": round(min(t), 3), "median_seconds": round(statistics.median(t), 3),
                   "seconds": [round(s, 3) for s in t], "ratio_to_hand_written": round(min(t) / baseline, 3)}
            for name, t in times.items()}
    print(f"\none epoch of MLP3 on MNIST (60000 images, batch {BATCH}), {args.repeats} repeats per side, alternating")
    print(f"{'side':<20} {'fastest':>8} {'median':>8} {'fastest / hand-written':>23}")
    for name, row in rows.items():
        print(f"{name:<20} {row['min_seconds']:7.3f}s {row['median_seconds']:7.3f}s {row['ratio_to_hand_written']:22.3f}")
    if "PyTorch CPU" not in rows:
        print(f"{'PyTorch CPU':<20} {torch_note}")

    machine = {"numpy": np.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "blas_threads": threads, "processor": platform.processor() or platform.machine(),
               "repeats": args.repeats, "torch": torch_note}
    print(f"\nmachine: {machine}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"batch_size": BATCH, "lr": LR, "dtype": "float32", "machine": machine, "sides": rows,
                  "ratio_autograd_to_hand_written": rows["autograd"]["ratio_to_hand_written"],
                  "ratio_pytorch_to_hand_written": rows.get("PyTorch CPU", {}).get("ratio_to_hand_written")}
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
