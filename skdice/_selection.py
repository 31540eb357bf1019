"""Exact quantiles of every entry of a feature matrix, read block by block.

ReAct's clip, VRA's two bounds, OptFS's range and LINe's clip are
percentiles of *every activation* of the training features (the flattened
matrix, ``numpy.percentile(X, q)``). In memory that is one
``numpy.partition``; for a split larger than memory (an ImageNet-1K
training split is 2.6 billion activations, 10.5 GB in float32) it is a
selection over passes: :func:`entry_quantile` finds the two order
statistics numpy's linear method interpolates by radix selection on the
floats' bits and hands them to numpy's own interpolation, so the result is
*equal* to ``numpy.quantile`` on the whole matrix, not an approximation
(``tests/test_selection.py`` checks equality on every dtype and rank).

How the selection works
-----------------------
Each float is mapped to an unsigned integer key of the same width whose
order is the floats' order (the sign bit flipped for positive numbers, every
bit flipped for negative ones). The order statistic of rank ``r`` is then the
key found digit by digit, 16 bits per pass: one pass counts, in 65,536 bins,
the next 16 bits of the keys that share the digits found so far; the
cumulative counts give the next digit and the rank within it. Once the
entries sharing the found digits number at most :data:`COLLECT_LIMIT`, one
more pass collects them and ``numpy.partition`` finishes. float32 features
take two passes (the 32 bits are known after two counts); float64 ones
usually three. Memory is the block being read, one 65,536-bin count per rank
sought and at most :data:`COLLECT_LIMIT` entries. A source with a
``selection_memo`` dict (the training rows of a search, which every
candidate's fit reads: :class:`skdice._streamed_fit.CheckedBlocks` made with
``memo=True``) keeps the first count and the entries found, so a grid of
percentiles costs one pass per further candidate; a hand-rolled selection
because neither numpy nor scikit-learn selects over blocks (Dask's
percentiles are approximate).
"""

from __future__ import annotations

import numpy as np

from ._validation import is_block_source

__all__ = ["COLLECT_LIMIT", "entry_percentile", "entry_quantile"]

#: Entries sharing the digits found so far below which a pass collects them
#: (16 MiB of float32) instead of counting one more digit.
COLLECT_LIMIT = 1 << 22

_DIGIT = 16
_BINS = 1 << _DIGIT
_KEY_TYPES = {np.dtype(np.float32): np.dtype(np.uint32), np.dtype(np.float64): np.dtype(np.uint64)}


def entry_percentile(X, q):
    """``numpy.percentile(X, q)`` over every entry of ``X``, an array or a block source.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or block source
        A block source (:func:`skdice._validation.is_block_source`) is read
        in passes, block by block; its blocks must be float32 or float64 and
        finite.
    q : float or sequence of float
        Percentiles in ``[0, 100]``.

    Returns
    -------
    float or ndarray
        Equal to ``numpy.percentile(X, q)`` on the whole matrix, its dtype
        included (numpy's rules: a Python float ``q`` keeps the features'
        precision, a sequence gives float64).
    """
    weak = type(q) in (int, float)
    quantile = np.true_divide(q, 100)
    return entry_quantile(X, float(quantile) if weak else quantile)


def entry_quantile(X, q):
    """``numpy.quantile(X, q)`` over every entry of ``X``, an array or a block source.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or block source
        See :func:`entry_percentile`.
    q : float or sequence of float
        Quantiles in ``[0, 1]``.

    Returns
    -------
    float or ndarray
        Equal to ``numpy.quantile(X, q)`` on the whole matrix (linear
        method), its dtype included.

    Examples
    --------
    >>> X = np.arange(12, dtype=np.float32).reshape(4, 3)
    >>> float(entry_quantile(X, 0.5))
    5.5
    """
    if not is_block_source(X):
        return np.quantile(X, q)
    weak = type(q) in (int, float)
    qs = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if qs.ndim != 1 or ((qs < 0) | (qs > 1)).any() or np.isnan(qs).any():
        raise ValueError(f"quantiles must lie in [0, 1], got {q!r}.")
    dtype = np.dtype(X.dtype) if np.dtype(X.dtype) in _KEY_TYPES else np.dtype(np.float32)
    n = int(X.shape[0]) * int(X.shape[1])
    if n == 0:
        raise ValueError("no entries to take a quantile of.")
    # numpy's linear method: the virtual index (n - 1) q, its floor and the next index
    virtual = (n - 1) * qs
    previous = np.floor(virtual)
    above = virtual >= n - 1
    low = np.where(above, n - 1, previous).astype(np.int64)
    high = np.where(above, n - 1, previous + 1).astype(np.int64)
    ranks = np.unique(np.concatenate([low, high]))
    values = dict(zip(ranks.tolist(), _order_statistics(X, dtype, ranks.tolist())))
    gamma = np.where(above, 0.0, virtual - previous)
    out = []
    for lo, hi, g in zip(low.tolist(), high.tolist(), gamma.tolist()):
        pair = np.array([values[lo], values[hi]], dtype=dtype)
        # numpy's own interpolation between the two order statistics (with two
        # entries the virtual index is gamma itself), with q's promotion rule
        out.append(np.quantile(pair, g) if weak else np.quantile(pair, np.array([g]))[0])
    if weak:
        return out[0]
    return np.asarray(out).reshape(np.shape(q))[()]


def _keys(values: np.ndarray, key_type: np.dtype) -> np.ndarray:
    """Unsigned keys ordered as the floats ``values`` (finite, of the key's width)."""
    bits = key_type.itemsize * 8
    u = values.view(key_type)
    sign = key_type.type(1) << key_type.type(bits - 1)
    negative = (u & sign) != 0
    return np.where(negative, ~u, u | sign)


def _float_of(key: int, dtype: np.dtype):
    key_type = _KEY_TYPES[dtype]
    bits = key_type.itemsize * 8
    sign = 1 << (bits - 1)
    raw = key ^ sign if key & sign else ~key & ((1 << bits) - 1)
    return np.array([raw], dtype=key_type).view(dtype)[0]


def _entries(X, dtype):
    for _, block in X.iter_blocks():
        yield np.ascontiguousarray(block, dtype=dtype).ravel()


def _order_statistics(X, dtype: np.dtype, ranks: list[int]) -> list:
    """The entries of ranks ``ranks`` (0-based, ascending order) of a block source."""
    key_type = _KEY_TYPES[dtype]
    bits = key_type.itemsize * 8
    # per rank sought: the digits found (prefix), how many bits they cover, the rank
    # among the entries sharing them, and how many entries share them
    state = {r: [0, 0, r, int(X.shape[0]) * int(X.shape[1])] for r in ranks}
    # a source read by several fits (a search's candidates) keeps the first count,
    # which every rank shares, and the entries found (``selection_memo``)
    memo = getattr(X, "selection_memo", None)
    top = (0, 0, "count")
    found: dict[int, object] = {}
    if memo is not None:
        values = memo.setdefault(("values", dtype.str), {})
        found.update({r: values[r] for r in ranks if r in values})
    while len(found) < len(ranks):
        groups = {}
        for r, (prefix, known, _, count) in state.items():
            if r not in found:
                mode = "collect" if count <= COLLECT_LIMIT else "count"
                groups.setdefault((prefix, known, mode), []).append(r)
        counts = {g: np.zeros(_BINS, dtype=np.int64) for g in groups if g[2] == "count"}
        collected = {g: [] for g in groups if g[2] == "collect"}
        read = list(groups)
        if top in counts and memo is not None and ("top", dtype.str) in memo:
            counts[top] = memo[("top", dtype.str)]
            read.remove(top)
        for entries in _entries(X, dtype) if read else ():
            keys = _keys(entries, key_type)
            for prefix, known, mode in read:
                if known:
                    share = (keys >> key_type.type(bits - known)) == key_type.type(prefix)
                    if mode == "collect":
                        collected[(prefix, known, mode)].append(entries[share])
                        continue
                    sub = keys[share]
                elif mode == "collect":
                    collected[(prefix, known, mode)].append(entries.copy())
                    continue
                else:
                    sub = keys
                digit = (sub >> key_type.type(bits - known - _DIGIT)) & key_type.type(_BINS - 1)
                counts[(prefix, known, mode)] += np.bincount(digit.astype(np.intp), minlength=_BINS)
        if top in read and memo is not None:
            memo[("top", dtype.str)] = counts[top]
        for group, members in groups.items():
            prefix, known, mode = group
            if mode == "collect":
                pool = np.concatenate(collected[group]) if collected[group] else np.empty(0, dtype)
                within = sorted({state[r][2] for r in members})
                pool.partition(within)
                for r in members:
                    found[r] = pool[state[r][2]]
                continue
            cumulative = np.cumsum(counts[group])
            for r in members:
                rank = state[r][2]
                digit = int(np.searchsorted(cumulative, rank, side="right"))
                before = int(cumulative[digit - 1]) if digit else 0
                state[r] = [(prefix << _DIGIT) | digit, known + _DIGIT, rank - before,
                            int(counts[group][digit])]
                if known + _DIGIT == bits:
                    found[r] = _float_of(state[r][0], dtype)
    if memo is not None:
        values.update(found)
    return [found[r] for r in ranks]
