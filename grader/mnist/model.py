"""MLP3 on the trusted side: its parameters from the course's own nn.py, its math in numpy.

The parameters, their shapes, order and initialisation, are the course's `MLP3(seed=seed)`'s,
built from the course's copy of the package (course.course_module): one place, the model the
worker trains from the student's ops. Its forward and gradients cannot be the course's: nn.py runs
them through Matmul, ReLU and Softmax, graded names whose bodies in the course's copy are blank
(only the student's fill them, and the trusted side never runs student code). So they are written
here in plain numpy, from SPEC.md's closed forms, on the shapes the course's model has.
"""
from collections.abc import Callable
from typing import Any

import numpy as np

from ..checks.oracle import EPS  # SPEC.md's clip of log and of divisors
from ..course import course_module

MLP3 = course_module("nn").MLP3
FLOAT32_DOT = 2.0 ** -24  # a float32 dot product of n terms is within n × this of the sum of their magnitudes


def initial_parameters(seed: int) -> list[np.ndarray]:
    """The weights and biases of the course's MLP3(seed=seed), layer after layer: He-initialised
    float32 weights, zero biases."""
    return [parameter.data for parameter in MLP3(seed=seed).parameters()]


def parameter_names(model: Any) -> tuple[str, ...]:  # the course's MLP3
    """Each parameter's name as the feedback gives it ("layer 2 bias"), in the order of model.parameters()."""
    names = {id(getattr(layer, kind)): f"layer {index} {kind}" for index, layer in enumerate(model.layers, 1) for kind in ("weight", "bias")}
    return tuple(names[id(parameter)] for parameter in model.parameters())


_MODEL = MLP3()
PARAMETER_NAMES = parameter_names(_MODEL)
PARAMETER_COUNT = sum(parameter.data.size for parameter in _MODEL.parameters())
CLASSES = _MODEL.parameters()[-1].data.shape[0]  # the last layer's bias: one per class


def predict(parameters: list[np.ndarray], images: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """The most probable class of each image (uint8, (N, 28, 28)): MLP3's forward in plain numpy,
    float32 as the course computes it. Softmax keeps the order of the logits: their argmax."""
    classes = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].reshape(-1, parameters[0].shape[0]).astype(np.float32) / 255
        for layer in range(0, len(parameters), 2):
            x = x @ parameters[layer] + parameters[layer + 1]
            if layer + 2 < len(parameters):
                x = np.maximum(x, 0)
        classes.append(x.argmax(axis=1))
    return np.concatenate(classes)


def true_updates(parameters: list[np.ndarray], images: np.ndarray, labels: np.ndarray,
                 lr: float) -> tuple[list[np.ndarray], Callable[[], list[float]]]:
    """lr · MLP3's gradients on this batch, from the oracle's math (SPEC.md) in float64: the
    course's forward (Linear → ReLU → Linear → ReLU → Linear → Softmax, the images as the course
    prepares them) and CrossEntropyLoss with its clip at EPS, differentiated in closed form; and a
    function giving, for each parameter, how far an honest float32 run may be from it at ReLU's
    kink: a hidden unit whose pre-activation is within float32's rounding of 0 may be on or off
    there (its mask, any summation order), and the norm of what its gradient would carry is allowed
    on top (computed only when asked: it costs as much as the gradients)."""
    x = images.reshape(len(images), -1).astype(np.float32).astype(np.float64) / 255
    w1, b1, w2, b2, w3, b3 = (parameter.astype(np.float64) for parameter in parameters)
    h1 = x @ w1 + b1
    a1 = np.maximum(h1, 0)
    h2 = a1 @ w2 + b2
    a2 = np.maximum(h2, 0)
    z = a2 @ w3 + b3
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    targets = np.eye(CLASSES)[labels]
    grad_p = -targets / (len(x) * np.maximum(p, EPS))
    grad_z = p * (grad_p - (grad_p * p).sum(axis=1, keepdims=True))
    grad_h2 = grad_z @ w3.T * (h2 > 0)
    grad_h1 = grad_h2 @ w2.T * (h1 > 0)
    updates = [lr * g for g in (x.T @ grad_h1, grad_h1.sum(axis=0), a1.T @ grad_h2, grad_h2.sum(axis=0), a2.T @ grad_z, grad_z.sum(axis=0))]

    def kink_norms():
        on_kink1 = np.abs(h1) <= FLOAT32_DOT * len(w1) * (x @ np.abs(w1) + np.abs(b1))
        on_kink2 = np.abs(h2) <= FLOAT32_DOT * len(w2) * (a1 @ np.abs(w2) + np.abs(b2))
        flipped2 = np.abs(grad_z @ w3.T) * on_kink2  # what a unit of layer 2 on its kink may carry, or not
        flipped1 = np.abs(grad_h2 @ w2.T) * on_kink1 + (flipped2 @ np.abs(w2).T) * (h1 > 0)
        return [lr * float(np.linalg.norm(g)) for g in (x.T @ flipped1, flipped1.sum(axis=0), a1.T @ flipped2, flipped2.sum(axis=0))] + [0.0, 0.0]
    return updates, kink_norms
