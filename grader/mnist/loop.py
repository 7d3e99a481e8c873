"""MLP3 on MNIST, trained here, on the trusted side, with gradients from the student's ops.

The weights, the batch order, the SGD update and the test accuracy live in this process: the
worker only computes, per step, MLP3's loss and gradients (the course's MLP3 built from the
student's ops) for the batches it is given, and sends SGD's updates, lr · gradient (computing
them where sending them would copy them anyway). Whatever it sends is checked before use, so
replacing the course's `train`, `predict`, optimizer or model inside the worker changes nothing,
and the test images never enter it. The loop is the course's (autodiff.train.train) step for
step: the same initial weights as MLP3(seed), the same permutation per epoch, the same float32
update; a correct submission trains exactly as it would on the student's machine.

The weights go to the worker and its steps come back through transport.py, whose acceptance rule
(transport.accepted_update) is the one checked_step applies here and the worker applies to its
own copy of the weights within an epoch. MLP3 itself, its parameters and its math: model.py.
"""
import hashlib
import math
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import transport
from .model import PARAMETER_COUNT, PARAMETER_NAMES, initial_parameters, predict, true_updates
from .transport import StepRefused, accepted_update

SLOT_BYTES = transport.slot_bytes(PARAMETER_COUNT)  # a ring's slot: one step's updates of MLP3's parameters
# Why MLP3's gradients hold nan or inf, the likelier cause first: a wrong backward (a wrong Softmax.backward
# gives nan as surely as an unstable one) before a missing maximum or clip; the report then names the ops
# whose own checks failed (report.mnist_lead).
NON_FINITE_CAUSE = ("a wrong backward of Matmul, ReLU, Softmax or CrossEntropyLoss, or an unstable one (no maximum "
                    "subtracted in Softmax, no clip at EPS in the loss)")
# A step's update of a parameter matches when ‖sent − lr · true gradient‖ ≤ RTOL ‖lr · true gradient‖ + ATOL,
# plus what the hidden units on ReLU's kink may carry (model.true_updates):
# float32 arithmetic in any order the student chose stays within 1e-5 of it (docs/grading.md, "MNIST").
RTOL, ATOL = 1e-3, 1e-8
SAMPLE_ONE_IN = 8  # besides the first step of each epoch and every outlier, one step in this many, drawn from the salt
OUTLIER = 4        # an update over this many times its parameter's typical verified update is verified
TYPICAL_WEIGHT = 0.1  # how much each verified step moves a parameter's typical update (an average over ~10 of them)


class StepCheck:
    """Verifies steps' updates against MLP3's true gradients, computed here from this side's own
    weights and batch: the first step of every epoch, a sample of the others drawn from the rubric's
    salt (secret to students, the same at every regrade), and every step that would move a parameter
    more than OUTLIER times its typical verified update, which bounds what an unverified step may
    move a weight. A mismatch refuses the step: the training stops there."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, lr: float, salt: str) -> None:
        self.images, self.labels, self.lr = images, labels, lr
        self.sample = np.random.default_rng(int.from_bytes(hashlib.sha256(f"mnist-steps:{salt}".encode()).digest()[:8], "little"))
        self.typical: list[float] | None = None  # per parameter: the typical norm of its true update, from the verified steps
        self.verified = 0
        self.largest_deviation = 0.0  # max over verified steps and parameters of ‖sent − true‖ / ‖true‖

    def check(self, where: str, first: bool, parameters: list[np.ndarray], batch: np.ndarray, updates: list[np.ndarray | None]) -> None:
        sampled = self.sample.random() < 1 / SAMPLE_ONE_IN  # drawn at every step: the sample does not depend on what was sent
        norms = [0.0 if update is None else float(np.sqrt(np.vdot(update, update))) for update in updates]
        outlier = self.typical is not None and any(not norm <= OUTLIER * typical for norm, typical in zip(norms, self.typical, strict=True))
        if not (first or sampled or outlier or self.typical is None):
            return
        expected, kink_norms = true_updates(parameters, self.images[batch], self.labels[batch], self.lr)
        true_norms = [float(np.linalg.norm(e)) for e in expected]
        on_kinks = None
        for index, (name, update, wanted, size) in enumerate(zip(PARAMETER_NAMES, updates, expected, true_norms, strict=True)):
            difference = float(np.linalg.norm(wanted if update is None else update.astype(np.float64) - wanted))
            if not math.isfinite(difference):
                raise StepRefused(f"{where}: the update of the {name} holds nan or inf, where MLP3's true gradient on "
                                  f"this batch is finite: {NON_FINITE_CAUSE}")
            if not difference <= RTOL * size + ATOL:
                on_kinks = on_kinks or kink_norms()  # rare: only then worth their cost
            if not difference <= RTOL * size + ATOL + (on_kinks[index] if on_kinks else 0.0):
                raise StepRefused(f"{where}: the update of the {name} is not lr × MLP3's gradient on this batch "
                                  f"(‖sent − expected‖ = {difference:.3g}, ‖expected‖ = {size:.3g}); the forward and "
                                  f"backward checks show which op is wrong")
            self.largest_deviation = max(self.largest_deviation, difference / size if size else 0.0)
        self.verified += 1
        self.typical = true_norms if self.typical is None else [
            (1 - TYPICAL_WEIGHT) * typical + TYPICAL_WEIGHT * size for typical, size in zip(self.typical, true_norms, strict=True)]


def checked_step(reply: dict[str, Any], parameters: list[np.ndarray]) -> tuple[float, list[np.ndarray | None]]:
    """The loss and SGD's updates (lr · gradient) of a step's reply, each as transport.accepted_update
    accepts it: a real floating-point array of its parameter's shape, or None (no gradient reached
    it: SGD leaves it as it is). Whether they are finite is told by the weights at the epoch's end
    (non_finite): a nan or inf never leaves the weight it reached."""
    loss = reply.get("loss")
    updates = reply.get("updates")
    if not isinstance(loss, (int, float)) or isinstance(loss, bool) or not isinstance(updates, list) or len(updates) != len(parameters) \
            or isinstance(loss, int) and abs(loss) > sys.float_info.max:  # an integer no float holds
        raise StepRefused("the worker's answer for this step could not be read as MLP3's loss and gradients")
    checked = [accepted_update(described, parameter.shape, name)
               for name, parameter, described in zip(PARAMETER_NAMES, parameters, updates, strict=True)]
    return float(loss), checked


def non_finite(parameters: list[np.ndarray]) -> str | None:
    """The name of the first parameter holding nan or inf, else None (‖p‖² first: one BLAS call)."""
    for name, parameter in zip(PARAMETER_NAMES, parameters, strict=True):
        if not np.isfinite(np.vdot(parameter, parameter)) and not np.isfinite(parameter).all():
            return name
    return None


@np.errstate(all="ignore")  # an update holding nan or inf, or overflowing: non_finite tells it after the epoch
def sgd_step(parameters: list[np.ndarray], updates: list[np.ndarray | None]) -> None:
    """Each parameter less its update, in place, in its dtype (float32), as the course's SGD.step."""
    for parameter, update in zip(parameters, updates, strict=True):
        if update is not None:
            np.subtract(parameter, update, out=parameter)


@dataclass
class Training:
    """What the trusted loop measured: test accuracy (%) and mean loss per epoch, its own time."""
    accuracy_per_epoch: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    refused: str | None = None   # why a step's gradients were refused; training stopped there


def train(serve: Callable[..., object], exchange: Callable[[], int | None], folder: Path, test_images: np.ndarray, test_labels: np.ndarray, *,
          epochs: int, batch_size: int, lr: float, seed: int, train_examples: int, check: StepCheck | None = None) -> Training:
    """Train MLP3 with minibatch SGD on gradients from the worker, as autodiff.train.train does;
    returns a Training. check: a StepCheck that verifies steps before they are applied.

    serve(**fields) is the request that has the worker serve the steps (worker.mnist_gradients):
    it returns when the loop ends it, and raises (the worker's error, its time budget) otherwise.
    The loop runs beside it, in a thread of this process. exchange() gives a descriptor of the
    serving sandbox's exchange file (WorkerClient.exchange), this loop's own to close."""
    parameters = initial_parameters(seed)
    training = Training()
    channel = transport.CHANNEL(folder, exchange, SLOT_BYTES)
    failure = []

    def accuracy(weights):
        return round(100 * float(np.mean(predict(weights, test_images) == test_labels)), 2)

    def loop(evaluator):
        evaluations: list[Future[float]] = []  # each epoch's accuracy, computed in a thread of its own while the worker goes on
        try:
            started = time.perf_counter()
            rng = np.random.default_rng(seed)
            for epoch in range(epochs):
                order = rng.permutation(train_examples)
                channel.send_epoch(order, parameters)
                total_loss = 0.0
                for start in range(0, train_examples, batch_size):
                    reply = channel.receive()
                    if reply is None:  # the worker's request ended: the epochs it went through
                        training.accuracy_per_epoch = [evaluation.result() for evaluation in evaluations]
                        return
                    loss, updates = checked_step(reply, parameters)
                    if check is not None:
                        check.check(f"step {start // batch_size + 1} of epoch {epoch + 1}", start == 0, parameters,
                                    order[start:start + batch_size], updates)
                    total_loss += loss * min(batch_size, train_examples - start)
                    sgd_step(parameters, updates)
                if name := non_finite(parameters):
                    raise StepRefused(f"the {name} became nan or inf (a gradient held nan or inf): {NON_FINITE_CAUSE}")
                training.losses.append(total_loss / train_examples)
                evaluations.append(evaluator.submit(accuracy, [parameter.copy() for parameter in parameters]))
            training.accuracy_per_epoch = [evaluation.result() for evaluation in evaluations]
            training.seconds = time.perf_counter() - started
        except StepRefused as refused:
            training.refused = str(refused)
        except BaseException as error:  # a grader bug: raised in the caller, not lost in the thread
            failure.append(error)
        finally:
            channel.stop()

    with ThreadPoolExecutor(1, thread_name_prefix="mnist-accuracy") as evaluator:
        thread = threading.Thread(target=loop, args=(evaluator,), name="mnist-sgd", daemon=True)
        thread.start()
        try:
            serve(data_dir=folder.name, seed=seed, train_examples=train_examples, batch_size=batch_size, lr=lr, **channel.fields)
        finally:
            channel.finished.set()
            thread.join()
            channel.close()
    if failure:
        raise failure[0]
    return training
