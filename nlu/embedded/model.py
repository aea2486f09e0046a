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
        rows = [
            list(zip(self.indices[self.indptr[r] : self.indptr[r + 1]].tolist(),
                     self.data[self.indptr[r] : self.indptr[r + 1]].tolist(), strict=True))
            for r in row_ids
        ]
        return SparseRows.from_rows(rows, self.n_features)

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1


@dataclass(slots=True)
class LinearModel:
    weights: np.ndarray  # (n_features, n_classes) float32
    bias: np.ndarray  # (n_classes,)

    def logits(self, x: SparseRows) -> np.ndarray:
        contrib = self.weights[x.indices] * x.data[:, None]
        return np.add.reduceat(contrib, x.indptr[:-1], axis=0) + self.bias

    def row_logits(self, idx: np.ndarray, values: np.ndarray) -> np.ndarray:
        return values @ self.weights[idx] + self.bias


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = z / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit(x: SparseRows, y: np.ndarray, n_classes: int, *, l2: float = 1e-4,
        epochs: int = 150, lr: float = 0.1, sample_weight: np.ndarray | None = None,
        progress: Callable[[int], None] | None = None) -> LinearModel:
    """Minimise weighted cross-entropy + l2 * |W|^2 / 2 with full-batch Adam."""
    n = x.n_rows
    rows = np.repeat(np.arange(n), np.diff(x.indptr))
    order = np.argsort(x.indices, kind="stable")
    feat_sorted = x.indices[order]
    starts = np.flatnonzero(np.r_[True, feat_sorted[1:] != feat_sorted[:-1]])
    used = feat_sorted[starts]
    rows_sorted, data_sorted = rows[order], x.data[order][:, None]
    targets = np.zeros((n, n_classes), dtype=np.float32)
    targets[np.arange(n), y] = 1.0
    sw = (np.ones(n, dtype=np.float32) if sample_weight is None else sample_weight.astype(np.float32))
    sw = (sw / sw.sum())[:, None]

    model = LinearModel(np.zeros((x.n_features, n_classes), np.float32), np.zeros(n_classes, np.float32))
    w_sub = np.zeros((len(used), n_classes), np.float32)  # only features seen in x move
    m_w, v_w = np.zeros_like(w_sub), np.zeros_like(w_sub)
    m_b, v_b = np.zeros(n_classes, np.float32), np.zeros(n_classes, np.float32)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, epochs + 1):
        model.weights[used] = w_sub
        grad_z = (softmax(model.logits(x)) - targets) * sw
        grad_w = np.add.reduceat(data_sorted * grad_z[rows_sorted], starts, axis=0) + l2 * w_sub
        grad_b = grad_z.sum(axis=0)
        for param, grad, m, v in ((w_sub, grad_w, m_w, v_w), (model.bias, grad_b, m_b, v_b)):
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            param -= lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)
        if progress:
            progress(step)
    model.weights[used] = w_sub
    return model


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature minimising the negative log-likelihood of held-out logits."""
    best, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 60)):
        p = softmax(logits, float(t))[np.arange(len(y)), y]
        nll = float(-np.log(np.clip(p, 1e-9, 1.0)).mean())
        if nll < best_nll:
            best, best_nll = float(t), nll
    return best
