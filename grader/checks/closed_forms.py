"""The backward formulas of the homework's core ops (Mul, Matmul, Pow, Sum) in closed form:
the course's grader only. The student handout's grader leaves this file out (tools/bundle.py) and
its oracle falls back to central differences with a looser tolerance (oracle.py): a practice run
gives the same verdicts on any correct or clearly wrong submission, without shipping a worked
backward of every op. The Gradescope autograder, which only the course's staff see, keeps it."""
import numpy as np

from .oracle import reduce_to as summed_to


def mul(upstream: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return summed_to(upstream * right, np.shape(left)), summed_to(upstream * left, np.shape(right))


def matmul(upstream: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (summed_to(np.matmul(upstream, np.swapaxes(right, -1, -2)), np.shape(left)),
            summed_to(np.matmul(np.swapaxes(left, -1, -2), upstream), np.shape(right)))


def power(upstream: np.ndarray, base: np.ndarray, exponent: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """dB only where every base is positive: SPEC defines it nowhere else."""
    with np.errstate(all="ignore"):
        by_base = summed_to(upstream * exponent * np.power(base, exponent - 1.0), np.shape(base))
        by_exponent = summed_to(upstream * np.power(base, exponent) * np.log(base), np.shape(exponent)) if np.all(base > 0) else None
    return by_base, by_exponent


def total(upstream: np.ndarray, values: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> tuple[np.ndarray]:
    upstream = np.asarray(upstream, dtype=np.float64)
    if axis is not None and not keepdims:
        upstream = np.expand_dims(upstream, axis)
    return (np.broadcast_to(upstream, np.shape(values)).copy(),)
