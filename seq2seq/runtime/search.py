"""Greedy and batched beam search in NumPy over an exported decoder step.

A port of seq2seq/decoding/greedy.py, hypothesis.py and beam_search.py (the same arithmetic, in
float32 where they use float32) so that the runtime's outputs equal PyTorch's: beams as flat
[B * K] rows, the length penalty ((5 + |Y|) / 6) ** alpha, the early-finish bound, n-best lists,
max_len_a * S + max_len_b, and finished sentences leaving the batch. The coverage penalty and
n-gram blocking are not ported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BOS_ID, EOS_ID = 2, 3  # fixed for every model (seq2seq/data/tokenizer.py); export.json says so


@dataclass
class Hypothesis:
    """tokens: ids without eos; score: what search ranks by (beam: log_prob / lp; greedy:
    log_prob); log_prob: sum of the token log-probabilities (eos included when produced);
    attention: [steps, S_i] float32 (eos step included when produced)."""

    tokens: list[int]
    score: float
    log_prob: float
    attention: np.ndarray


class State:
    """A decoder state as named arrays, with the layout of export.json: per tensor its batch
    axis and whether it is static (source only, not returned by the step)."""

    def __init__(self, arrays: dict[str, np.ndarray], layout: list[dict]):
        self.arrays, self.layout = arrays, layout

    def index_select(self, rows: np.ndarray, same_source: bool = False) -> State:
        """The state of rows `rows` ([B'] int64), in that order; same_source: rows stay in
        their sentence, so the static (source) tensors are kept as they are."""
        out = {}
        for e in self.layout:
            a = self.arrays[e["name"]]
            out[e["name"]] = a if same_source and e["static"] else np.take(a, rows,
                                                                          axis=e["batch_axis"])
        return State(out, self.layout)


Step = Callable[[np.ndarray, State], tuple[np.ndarray, State, np.ndarray]]


def length_penalty(length, alpha: float):
    """lp(Y) = ((5 + |Y|) / 6) ** alpha (seq2seq/decoding/penalties.py)."""
    return ((5.0 + length) / 6.0) ** alpha


def max_output_length(src_lengths: np.ndarray, a: float, b: int) -> np.ndarray:
    """Longest output allowed per sentence, eos excluded: a * source length + b.  [B] int64."""
    return (src_lengths.astype(np.float32) * np.float32(a) + np.float32(b)).astype(np.int64)


def greedy(step: Step, state: State, src_lengths: np.ndarray, limit: np.ndarray
           ) -> list[list[Hypothesis]]:
    """The most likely token at each step until eos or the limit ([B] int64); finished rows
    leave the batch. One hypothesis per sentence (score = log_prob), as a one-element list."""
    R = len(src_lengths)
    alive = np.arange(R)
    prev = np.full(R, BOS_ID, dtype=np.int64)
    tokens: list[list[int]] = [[] for _ in range(R)]
    attn: list[list[np.ndarray]] = [[] for _ in range(R)]
    scores = np.zeros(R, dtype=np.float32)
    t = 0
    while alive.size:
        logp, state, weights = step(prev, state)
        nxt = logp.argmax(-1)
        scores[alive] += logp[np.arange(len(nxt)), nxt]
        t += 1
        done = (nxt == EOS_ID) | (t >= limit[alive])
        for j, (row, tok) in enumerate(zip(alive.tolist(), nxt.tolist(), strict=True)):
            attn[row].append(weights[j])
            if tok != EOS_ID:
                tokens[row].append(tok)
        if done.any():
            keep = np.flatnonzero(~done)
            alive, nxt, state = alive[keep], nxt[keep], state.index_select(keep)
        prev = nxt
    return [[Hypothesis(tokens[r], float(scores[r]), float(scores[r]),
                        np.stack(attn[r])[:, : src_lengths[r]])] for r in range(R)]


def _add(bucket: list[Hypothesis], K: int, tokens: np.ndarray, log_prob, attention: np.ndarray,
         alpha: float, src_len: int, eos: bool = True) -> None:
    """Score a finished hypothesis and keep the K best of its sentence, best first."""
    toks = tokens.tolist()
    score = float(log_prob) / length_penalty(len(toks) + (1 if eos else 0), alpha)
    bucket.append(Hypothesis(toks, score, float(log_prob), attention[:, :src_len]))
    bucket.sort(key=lambda h: -h.score)
    del bucket[K:]


def beam_search(step: Step, state: State, src_lengths: np.ndarray, limit: np.ndarray, *,
                beam: int, alpha: float, nbest: int, min_len: int = 0
                ) -> list[list[Hypothesis]]:
    """The `nbest` best hypotheses of each sentence, best first (beam 1: greedy search).

    step: (prev [R] int64, state) -> (log-probs [R, V] float32, state, attention [R, S]);
    state: the encoder's state of the B sentences; src_lengths: [B] int64; limit: [B] int64.
    """
    K = beam
    if nbest > K:
        raise ValueError(f"nbest={nbest} cannot exceed the beam size {K}")
    if K == 1 and not min_len:
        return greedy(step, state, src_lengths, limit)
    B = len(src_lengths)
    S = int(state.arrays["src_mask"].shape[1])
    f32 = np.float32
    state = state.index_select(np.repeat(np.arange(B), K))  # [B*K]
    live = np.arange(B)
    scores = np.full((B, K), -np.inf, dtype=f32)
    scores[:, 0] = 0.0  # the first step expands a single beam
    history = np.zeros((B * K, 0), dtype=np.int64)  # [n*K, t]
    attn = np.zeros((B * K, 0, S), dtype=f32)  # [n*K, t, S]
    prev = np.full(B * K, BOS_ID, dtype=np.int64)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    # live log-probs only fall and lp only grows, so log_prob / lp(limit) bounds a live beam
    lp_max = (length_penalty(limit.astype(f32), f32(alpha)).astype(f32) if alpha > 0
              else np.ones(B, dtype=f32))
    kth = np.full(B, -np.inf, dtype=f32)  # score of the nbest-th best finished hypothesis
    t = 0
    while live.size:
        n = live.size
        logp, state, weights = step(prev, state)  # [n*K, V], [n*K, S]
        t += 1
        if t <= min_len:
            logp[:, EOS_ID] = -np.inf
        V = logp.shape[1]
        cand = (scores[:, :, None] + logp.reshape(n, K, V)).reshape(n, K * V)  # [n, K*V]
        m = min(2 * K, K * V)
        part = np.argpartition(-cand, m - 1, axis=1)[:, :m]  # [n, 2K], unordered
        vals = np.take_along_axis(cand, part, 1)
        order = np.argsort(-vals, axis=1, kind="stable")
        idx, top = np.take_along_axis(part, order, 1), np.take_along_axis(vals, order, 1)
        beam_of, tok = idx // V, idx % V
        rows = np.arange(n)[:, None] * K + beam_of  # [n, 2K] rows of the step

        # eos among the K best candidates ends a hypothesis
        is_eos = (tok == EOS_ID) & np.isfinite(top)
        is_eos[:, K:] = False
        for i, j in zip(*np.nonzero(is_eos), strict=True):
            r, b = int(rows[i, j]), int(live[i])
            _add(finished[b], K, history[r], top[i, j],
                 np.concatenate([attn[r], weights[r][None]]), alpha, int(src_lengths[b]))
            if len(finished[b]) >= nbest:
                kth[b] = finished[b][nbest - 1].score

        # the K best non-eos candidates continue
        key = np.where(tok == EOS_ID, K * V + np.arange(m), np.arange(m))
        pos = np.argsort(key, axis=1, kind="stable")[:, :K]  # [n, K]
        scores = np.take_along_axis(top, pos, 1)
        sel = np.take_along_axis(rows, pos, 1).reshape(-1)  # [n*K]
        prev = np.take_along_axis(tok, pos, 1).reshape(-1)
        history = np.concatenate([history[sel], prev[:, None]], axis=1)
        attn = np.concatenate([attn[sel], weights[sel][:, None]], axis=1)
        state = state.index_select(sel, same_source=True)

        # a sentence is done at its length limit, or when no live beam can beat its n-best
        at_limit = t >= limit[live]  # [n]
        bound = scores.max(axis=1) / lp_max[live]
        done = at_limit | (bound <= kth[live])
        for i in np.flatnonzero(at_limit).tolist():
            b = int(live[i])
            for k in range(K):
                r = i * K + k
                if np.isfinite(scores[i, k]):
                    _add(finished[b], K, history[r], scores[i, k], attn[r], alpha,
                         int(src_lengths[b]), eos=False)
        if done.any():
            keep = np.flatnonzero(~done)
            keep_rows = (keep[:, None] * K + np.arange(K)).reshape(-1)
            live, scores = live[keep], scores[keep]
            history, attn = history[keep_rows], attn[keep_rows]
            prev, state = prev[keep_rows], state.index_select(keep_rows)
    return [f[:nbest] for f in finished]
