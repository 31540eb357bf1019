"""Synthetic problems shared by the detector tests (imported by name: no package here)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def random_problem(n=300, m=24, C=7, seed=0):
    """Post-ReLU-like features, a random head and a bias (float32)."""
    rng = np.random.default_rng(seed)
    H = np.maximum(rng.normal(0.5, 1.0, size=(n, m)), 0).astype(np.float32)
    W = rng.normal(size=(m, C)).astype(np.float32)
    b = rng.normal(size=C).astype(np.float32)
    return H, W, b


def id_ood_problem(m=32, C=4, n_per_class=100, seed=0):
    """ID rows cluster around class prototypes the head is aligned with; OOD rows do not.

    Returns H_train, y_train, H_id, H_ood, W, b. ID features are non-negative
    prototypes plus small noise; W's column c points along prototype c, so ID
    rows get one large logit. OOD rows are weak, unstructured activations.
    """
    rng = np.random.default_rng(seed)
    protos = np.maximum(rng.normal(0, 1.5, size=(C, m)), 0) + 0.05
    W = (protos / np.linalg.norm(protos, axis=1, keepdims=True)).T * 3.0
    W = (W + 0.05 * rng.normal(size=W.shape)).astype(np.float32)
    b = np.zeros(C, dtype=np.float32)

    def draw(n):
        y = np.repeat(np.arange(C), n)
        H = np.maximum(protos[y] + 0.3 * rng.normal(size=(y.size, m)), 0)
        return H.astype(np.float32), y

    H_train, y_train = draw(n_per_class)
    H_id, _ = draw(n_per_class // 2)
    H_ood = np.abs(rng.normal(0, 0.6, size=(C * n_per_class // 2, m))).astype(np.float32)
    return H_train, y_train, H_id, H_ood, W, b


def auroc(id_scores, ood_scores):
    """AUROC with ID as the positive class (higher score = more ID)."""
    y = np.r_[np.ones(len(id_scores)), np.zeros(len(ood_scores))]
    return roc_auc_score(y, np.r_[id_scores, ood_scores])
