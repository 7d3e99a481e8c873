"""The graded MNIST check: MLP3 built from the student's ops, trained by the course's own loop.

The worker trains and predicts; the accuracy is computed here, from test labels the worker never
sees, against the ramp in the rubric. The budget is wall-clock time: a far too slow
implementation scores zero for this check, and the rest of the report is unaffected.
"""
import numpy as np
import pytest

from .checking import CheckFailed, ask


@pytest.mark.group("MNIST")
def test_accuracy(student, rubric, mnist, json_metadata):
    settings = rubric.mnist
    folder, test_labels = mnist
    budget = settings["time_budget_seconds"]
    reply = ask(student, "train_mnist", ["ops", "activations", "losses"], timeout=budget, key=("MNIST",), data_dir=folder.name,
                epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
                seed=settings["seed"], train_examples=settings["train_examples"])
    predictions = reply.get("predictions")
    if not isinstance(predictions, np.ndarray) or predictions.shape != (settings["epochs"], len(test_labels)):
        raise CheckFailed("training finished but its predictions could not be read", status="error")
    curve = [round(100 * float(np.mean(epoch == test_labels)), 2) for epoch in predictions]
    accuracy = curve[-1]
    json_metadata["mnist"] = {"accuracy": accuracy, "accuracy_per_epoch": curve, "epochs": settings["epochs"],
                              "training_seconds": round(student.last_seconds, 2)}  # timed here, not by the worker
    credit = rubric.mnist_credit(accuracy)
    if credit < 1:
        losses = reply.get("losses") or []
        if losses and not np.all(np.isfinite(losses)):
            hint = " — the training loss became nan or inf: check the stability of Softmax, Log and the losses"
        else:
            hint = " — the forward and backward checks above show which op is the likely cause"
        raise CheckFailed(f"test accuracy {accuracy:.2f}% after {settings['epochs']} epochs; full credit from "
                          f"{settings['full_credit_accuracy']:.2f}%, none below {settings['zero_credit_accuracy']:.2f}%{hint}",
                          fraction=credit)
