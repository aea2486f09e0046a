"""Multinomial logistic regression on sparse features, trained with numpy (full-batch Adam)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

Row = list[tuple[int, float]]


@dataclass(slots=True)
class SparseRows:
    """A CSR matrix: row r has features indices[indptr[r]:indptr[r+1]] with values data[...]."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_features: int

    @classmethod
    def from_rows(cls, rows: Sequence[Row], n_features: int) -> SparseRows:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        indices = np.fromiter((i for r in rows for i, _ in r), dtype=np.int64, count=indptr[-1])
        data = np.fromiter((v for r in rows for _, v in r), dtype=np.float32, count=indptr[-1])
        return cls(indptr, indices, data, n_features)

    def take(self, row_ids: np.ndarray) -> SparseRows:
        row_ids = np.asarray(row_ids, dtype=np.int64)
        starts, ends = self.indptr[row_ids], self.indptr[row_ids + 1]
        lengths = ends - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # positions of the kept entries: each row's start plus 0..length-1
        pos = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return SparseRows(indptr, self.indices[pos], self.data[pos], self.n_features)

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1


@dataclass(slots=True)
class LinearModel:
    weights: np.ndarray  # (n_features, n_classes) float32
    bias: np.ndarray  # (n_classes,)

    def logits(self, x: SparseRows) -> np.ndarray:
        nonempty = np.diff(x.indptr) > 0
        out = np.zeros((x.n_rows, self.weights.shape[1]), np.float32)
        for c in range(self.weights.shape[1]):
            column = np.ascontiguousarray(self.weights[:, c])
            out[nonempty, c] = np.add.reduceat(x.data * column[x.indices], x.indptr[:-1][nonempty])
        return out + self.bias

    def row_logits(self, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        return values @ self.weights[idx] + self.bias


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = z / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit(x: SparseRows, y: np.ndarray, n_classes: int, *, l2: float = 1e-4,
        epochs: int = 150, lr: float = 0.1, sample_weight: np.ndarray | None = None,
        progress: Callable[[int], None] | None = None, init: LinearModel | None = None) -> LinearModel:
    """Minimise weighted cross-entropy + l2 * |W|^2 / 2 with full-batch Adam (starting from
    `init`'s weights when given).

    Products with the sparse matrix are done one class at a time on 1-D arrays (gather,
    multiply, reduceat/bincount), which numpy does an order of magnitude faster than on
    (nnz, classes) blocks."""
    n = x.n_rows
    rows = np.repeat(np.arange(n), np.diff(x.indptr))
    nonempty = np.diff(x.indptr) > 0
    row_starts = x.indptr[:-1][nonempty]
    used = np.unique(x.indices)
    local = np.searchsorted(used, x.indices)  # feature index within `used`
    n_used = len(used)
    targets = np.zeros((n_classes, n), dtype=np.float32)
    targets[y, np.arange(n)] = 1.0
    sw = (np.ones(n, dtype=np.float32) if sample_weight is None else sample_weight.astype(np.float32))
    sw = sw / sw.sum()

    w = np.zeros((n_classes, n_used), np.float32)  # transposed: one contiguous row per class
    b = np.zeros(n_classes, np.float32)
    if init is not None:
        w[:] = init.weights[used].T
        b[:] = init.bias
    m_w, v_w = np.zeros_like(w), np.zeros_like(w)
    m_b, v_b = np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    z = np.empty((n_classes, n), np.float32)
    grad_w = np.empty_like(w)
    for step in range(1, epochs + 1):
        z.fill(0.0)
        for c in range(n_classes):
            z[c, nonempty] = np.add.reduceat(x.data * w[c][local], row_starts)
        z += b[:, None]
        z -= z.max(axis=0, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=0, keepdims=True)
        grad_z = (z - targets) * sw
        for c in range(n_classes):
            grad_w[c] = np.bincount(local, weights=x.data * grad_z[c][rows], minlength=n_used)
        grad_w += l2 * w
        grad_b = grad_z.sum(axis=1)
        for param, grad, m, v in ((w, grad_w, m_w, v_w), (b, grad_b, m_b, v_b)):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            param -= lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)
        if progress:
            progress(step)
    weights = np.zeros((x.n_features, n_classes), np.float32)
    weights[used] = w.T
    return LinearModel(weights, b)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature minimising the negative log-likelihood of held-out logits."""
    best, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 60)):
        p = softmax(logits, float(t))[np.arange(len(y)), y]
        nll = float(-np.log(np.clip(p, 1e-9, 1.0)).mean())
        if nll < best_nll:
            best, best_nll = float(t), nll
    return best
