"""Greedy and batched beam search in NumPy over an exported decoder step.

A port of seq2seq/decoding/greedy.py, hypothesis.py and beam_search.py (the same arithmetic, in
float32 where they use float32) so that the runtime's outputs equal PyTorch's: beams as flat
[B * K] rows, the length penalty ((5 + |Y|) / 6) ** alpha, the coverage penalty, n-gram
blocking, min_len, the early-finish bound, n-best lists, max_len_a * S + max_len_b, and
finished sentences leaving the batch. The special ids (bos, eos) come from the caller, who
reads them from export.json. Sampling (seq2seq/decoding/sampling.py) draws from the
same filtered distribution with NumPy's generator, so its samples differ from PyTorch's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


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


def coverage_penalty(coverage: np.ndarray, src_mask: np.ndarray, beta: float) -> np.ndarray:
    """cp(X; Y) = beta * sum_i log(min(sum_t a_ti, 1)) over real source positions i
    (seq2seq/decoding/penalties.py). coverage: [R, S] float32; src_mask: [R, S] bool -> [R]."""
    if beta == 0:
        return np.zeros(coverage.shape[0], dtype=np.float32)
    logs = np.where(src_mask, np.log(np.clip(coverage, 1e-6, 1.0)), np.float32(0))
    return np.float32(beta) * logs.sum(-1, dtype=np.float32)


def block_repeated_ngrams(logp: np.ndarray, history: np.ndarray, n: int) -> np.ndarray:
    """logp [R, V] with -inf at the tokens that would repeat an n-gram already in each row's
    history ([R, t], bos excluded) (seq2seq/decoding/penalties.py)."""
    R, t = history.shape
    if n <= 0 or t < n:  # no complete n-gram yet
        return logp
    if n == 1:
        banned, hit = history, np.ones(history.shape, dtype=bool)
    else:
        grams = np.lib.stride_tricks.sliding_window_view(history, n, axis=1)  # [R, t-n+1, n]
        prefix = history[:, t - n + 1 :]  # [R, n - 1], the last n - 1 tokens
        hit = (grams[:, :, :-1] == prefix[:, None, :]).all(-1)  # [R, t - n + 1]
        banned = grams[:, :, -1]
    rows, cols = np.nonzero(hit)
    out = logp.copy()
    out[rows, banned[rows, cols]] = -np.inf
    return out


def top_k_top_p_filter(logits: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """-inf at every logit outside the k most likely tokens and outside the nucleus (the
    smallest set of most likely tokens whose probability mass reaches top_p): [R, V] -> [R, V]
    (seq2seq/decoding/sampling.py)."""
    logits = logits.copy()
    if top_k and top_k < logits.shape[-1]:
        kth = -np.partition(-logits, top_k - 1, axis=-1)[:, top_k - 1 : top_k]  # [R, 1]
        logits[logits < kth] = -np.inf
    if top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        probs = softmax(np.take_along_axis(logits, order, -1))
        mass_before = np.cumsum(probs, -1) - probs  # mass of the more likely tokens
        drop = np.zeros(logits.shape, dtype=bool)
        np.put_along_axis(drop, order, mass_before >= top_p, -1)  # the token reaching p stays
        logits[drop] = -np.inf
    return logits


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, float32."""
    e = np.exp(x - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis, float32."""
    m = x.max(-1, keepdims=True)
    return (x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))).astype(np.float32)


def max_output_length(src_lengths: np.ndarray, a: float, b: int) -> np.ndarray:
    """Longest output allowed per sentence, eos excluded: a * source length + b.  [B] int64."""
    return (src_lengths.astype(np.float32) * np.float32(a) + np.float32(b)).astype(np.int64)


def decode_rows(step: Step, state: State, src_lengths: np.ndarray, limit: np.ndarray,
                choose: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], *, bos: int,
                eos: int) -> list[Hypothesis]:
    """Decode R rows one token at a time from `bos`, each until it chooses `eos` or reaches its
    limit ([R] int64); finished rows leave the batch. choose: log-probs [R', V] -> (next tokens [R']
    int64, their log-probabilities [R'] float32). One Hypothesis per row (score = log_prob)
    (seq2seq/decoding/hypothesis.py)."""
    R = len(src_lengths)
    alive = np.arange(R)
    prev = np.full(R, bos, dtype=np.int64)
    tokens: list[list[int]] = [[] for _ in range(R)]
    attn: list[list[np.ndarray]] = [[] for _ in range(R)]
    scores = np.zeros(R, dtype=np.float32)
    t = 0
    while alive.size:
        logp, state, weights = step(prev, state)
        nxt, chosen = choose(logp)
        scores[alive] += chosen
        t += 1
        done = (nxt == eos) | (t >= limit[alive])
        for j, (row, tok) in enumerate(zip(alive.tolist(), nxt.tolist(), strict=True)):
            attn[row].append(weights[j])
            if tok != eos:
                tokens[row].append(tok)
        if done.any():
            keep = np.flatnonzero(~done)
            alive, nxt, state = alive[keep], nxt[keep], state.index_select(keep)
        prev = nxt
    return [Hypothesis(tokens[r], float(scores[r]), float(scores[r]),
                       np.stack(attn[r])[:, : src_lengths[r]]) for r in range(R)]


def greedy(step: Step, state: State, src_lengths: np.ndarray, limit: np.ndarray, *, bos: int,
           eos: int) -> list[list[Hypothesis]]:
    """The most likely token at each step until eos or the limit ([B] int64). One hypothesis
    per sentence (score = log_prob), as a one-element list."""
    def most_likely(logp):
        nxt = logp.argmax(-1)
        return nxt, logp[np.arange(len(nxt)), nxt]

    return [[h] for h in decode_rows(step, state, src_lengths, limit, most_likely, bos=bos,
                                     eos=eos)]


def sample(step: Step, state: State, src_lengths: np.ndarray, limit: np.ndarray, *, n: int,
           temperature: float, top_k: int, top_p: float, seed: int | None, bos: int, eos: int
           ) -> list[list[Hypothesis]]:
    """`n` samples per sentence, drawn with temperature, top_k (0 = off), top_p (1 = off) and
    seed (None: a fresh one); scores are log-probs under the filtered distribution."""
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}: must be > 0 (use greedy for 0)")
    rng = np.random.default_rng(seed)

    def draw(logp):
        filtered = log_softmax(top_k_top_p_filter(logp / np.float32(temperature), top_k, top_p))
        c = np.cumsum(np.exp(filtered.astype(np.float64)), -1)  # [R, V]
        u = rng.random(len(c))[:, None]  # [0, 1): the first token whose cumulative mass
        nxt = (c <= u * c[:, -1:]).sum(-1)  # exceeds u (never a filtered, zero-mass token)
        return nxt.astype(np.int64), filtered[np.arange(len(c)), nxt]

    B = len(src_lengths)
    expand = np.repeat(np.arange(B), n)
    hyps = decode_rows(step, state.index_select(expand), src_lengths[expand], limit[expand],
                       draw, bos=bos, eos=eos)
    return [hyps[b * n : (b + 1) * n] for b in range(B)]


def _add(bucket: list[Hypothesis], K: int, tokens: np.ndarray, log_prob, attention: np.ndarray,
         coverage: np.ndarray, mask: np.ndarray, alpha: float, beta: float, src_len: int,
         eos: bool = True) -> None:
    """Score a finished hypothesis and keep the K best of its sentence, best first."""
    toks = tokens.tolist()
    score = float(log_prob) / length_penalty(len(toks) + (1 if eos else 0), alpha)
    if beta:
        score += float(coverage_penalty(coverage[None], mask[None], beta)[0])
    bucket.append(Hypothesis(toks, score, float(log_prob), attention[:, :src_len]))
    bucket.sort(key=lambda h: -h.score)
    del bucket[K:]


def beam_search(step: Step, state: State, src_lengths: np.ndarray, limit: np.ndarray, *,
                beam: int, alpha: float, nbest: int, min_len: int = 0, coverage: float = 0.0,
                no_repeat_ngram_size: int = 0, bos: int, eos: int) -> list[list[Hypothesis]]:
    """The `nbest` best hypotheses of each sentence, best first (beam 1 without penalties:
    greedy search).

    step: (prev [R] int64, state) -> (log-probs [R, V] float32, state, attention [R, S]);
    state: the encoder's state of the B sentences; src_lengths: [B] int64 (sources padded to
    the longest, as runtime/translator.py's source_batch does); limit: [B] int64;
    coverage: the coverage penalty's beta; no_repeat_ngram_size: n-grams that may not repeat.
    """
    K, beta = beam, coverage
    if nbest > K:
        raise ValueError(f"nbest={nbest} cannot exceed the beam size {K}")
    if K == 1 and not (beta or no_repeat_ngram_size or min_len):
        return greedy(step, state, src_lengths, limit, bos=bos, eos=eos)
    B = len(src_lengths)
    S = int(src_lengths.max())
    src_mask = np.arange(S)[None, :] < src_lengths[:, None]  # [B, S]
    f32 = np.float32
    state = state.index_select(np.repeat(np.arange(B), K))  # [B*K]
    live = np.arange(B)
    scores = np.full((B, K), -np.inf, dtype=f32)
    scores[:, 0] = 0.0  # the first step expands a single beam
    history = np.zeros((B * K, 0), dtype=np.int64)  # [n*K, t]
    attn = np.zeros((B * K, 0, S), dtype=f32)  # [n*K, t, S]
    cov = np.zeros((B * K, S), dtype=f32)  # attention summed over the steps
    prev = np.full(B * K, bos, dtype=np.int64)
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
            logp[:, eos] = -np.inf
        if no_repeat_ngram_size:
            logp = block_repeated_ngrams(logp, history, no_repeat_ngram_size)
        V = logp.shape[1]
        cand = (scores[:, :, None] + logp.reshape(n, K, V)).reshape(n, K * V)  # [n, K*V]
        m = min(2 * K, K * V)
        part = np.argpartition(-cand, m - 1, axis=1)[:, :m]  # [n, 2K], unordered
        vals = np.take_along_axis(cand, part, 1)
        order = np.argsort(-vals, axis=1, kind="stable")
        idx, top = np.take_along_axis(part, order, 1), np.take_along_axis(vals, order, 1)
        beam_of, tok = idx // V, idx % V
        rows = np.arange(n)[:, None] * K + beam_of  # [n, 2K] rows of the step
        new_cov = cov + weights if beta else cov

        # eos among the K best candidates ends a hypothesis
        is_eos = (tok == eos) & np.isfinite(top)
        is_eos[:, K:] = False
        for i, j in zip(*np.nonzero(is_eos), strict=True):
            r, b = int(rows[i, j]), int(live[i])
            _add(finished[b], K, history[r], top[i, j],
                 np.concatenate([attn[r], weights[r][None]]), new_cov[r], src_mask[b], alpha,
                 beta, int(src_lengths[b]))
            if len(finished[b]) >= nbest:
                kth[b] = finished[b][nbest - 1].score

        # the K best non-eos candidates continue
        key = np.where(tok == eos, K * V + np.arange(m), np.arange(m))
        pos = np.argsort(key, axis=1, kind="stable")[:, :K]  # [n, K]
        scores = np.take_along_axis(top, pos, 1)
        sel = np.take_along_axis(rows, pos, 1).reshape(-1)  # [n*K]
        prev = np.take_along_axis(tok, pos, 1).reshape(-1)
        history = np.concatenate([history[sel], prev[:, None]], axis=1)
        attn = np.concatenate([attn[sel], weights[sel][:, None]], axis=1)
        cov = new_cov[sel]
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
                    _add(finished[b], K, history[r], scores[i, k], attn[r], cov[r],
                         src_mask[b], alpha, beta, int(src_lengths[b]), eos=False)
        if done.any():
            keep = np.flatnonzero(~done)
            keep_rows = (keep[:, None] * K + np.arange(K)).reshape(-1)
            live, scores = live[keep], scores[keep]
            history, attn, cov = history[keep_rows], attn[keep_rows], cov[keep_rows]
            prev, state = prev[keep_rows], state.index_select(keep_rows)
    return [f[:nbest] for f in finished]
