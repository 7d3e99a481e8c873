"""The graded MNIST check: MLP3 built from the student's ops, trained by the trusted side.

The worker computes each step's loss and gradients from the student's ops; the weights, the batch
order, the SGD update and the test accuracy are this process's (grader/mnist/loop.py), and the test
images never leave it. The updates it sends are verified against MLP3's true gradients on a
sample of steps and on every outlier (loop.StepCheck): owning the update is not owning the
number. The budget is wall-clock time: a far too slow implementation (a backward
by numerical differences, say) scores zero for this check, and the rest of the report is unaffected.
"""
import math
from pathlib import Path

import numpy as np
import pytest

from ..course import load_mnist
from ..mnist.loop import StepCheck, train
from ..rubric import Rubric
from ..sandbox.client import WorkerClient
from .checking import CheckFailed, ask
from .plugin import TRAINING

HINT_LOSS = " — the training loss became nan or inf: check the stability of Softmax, Log and the losses"
HINT_OPS = " — the forward and backward checks above show which op is the likely cause"


@pytest.mark.group("MNIST")
@pytest.mark.kind("accuracy")
@pytest.mark.usefixtures("scale_ahead", "search_ahead")  # started now, computed while MNIST trains (plugin.py)
def test_accuracy(student: WorkerClient, rubric: Rubric, mnist: tuple[Path, np.ndarray, np.ndarray], request: pytest.FixtureRequest) -> None:
    settings = rubric.mnist
    folder, test_images, test_labels = mnist

    def serve(**fields):
        ask(student, "mnist_gradients", ["ops", "activations", "losses"], timeout=settings["time_budget_seconds"],
            key=("MNIST",), **fields)

    data = load_mnist()  # from the user's cache (course.load_mnist): the arrays the mnist fixture exposed the training half of
    check = StepCheck(data.train_images, data.train_labels, settings["lr"], rubric.salt)
    training = train(serve, student.exchange, folder, test_images, test_labels, epochs=settings["epochs"], batch_size=settings["batch_size"],
                     lr=settings["lr"], seed=settings["seed"], train_examples=settings["train_examples"], check=check)
    if training.refused:
        raise CheckFailed(f"training MLP3 stopped in epoch {len(training.losses) + 1}: {training.refused}")
    if len(training.accuracy_per_epoch) < settings["epochs"]:  # its request ended with no error, but too soon
        raise CheckFailed(f"training MLP3 stopped in epoch {len(training.losses) + 1}: the worker stopped computing its steps")
    curve = training.accuracy_per_epoch
    accuracy = curve[-1]
    request.node.stash[TRAINING] = {"accuracy": accuracy, "accuracy_per_epoch": curve, "epochs": settings["epochs"],
                                    "training_seconds": round(training.seconds, 2), "verified_steps": check.verified,
                                    "largest_deviation": float(f"{check.largest_deviation:.3g}")}
    credit = rubric.mnist_credit(accuracy)
    if credit < 1:
        hint = HINT_LOSS if not all(map(math.isfinite, training.losses)) else HINT_OPS
        raise CheckFailed(f"test accuracy {accuracy:.2f}% after {settings['epochs']} epochs; full credit from "
                          f"{settings['full_credit_accuracy']:.2f}%, none below {settings['zero_credit_accuracy']:.2f}%{hint}",
                          fraction=credit)
