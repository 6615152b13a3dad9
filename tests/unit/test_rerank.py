"""Noisy-channel reranking: forced scoring through decoder.step, and the reranked order."""

import math

import pytest
import torch

from seq2seq.data.batch import collate
from seq2seq.data.tokenizer import BOS_ID, EOS_ID
from seq2seq.decoding.beam_search import beam_search
from seq2seq.decoding.hypothesis import Hypothesis
from seq2seq.decoding.rerank import channel_rerank, forced_log_probs
from seq2seq.models.ensemble import Ensemble
from seq2seq.models.seq2seq import build_seq2seq
from tests.conftest import MAX_TOKENS, model_config, search_options

V = 20


def _model(preset="lstm_luong_general", seed=0):
    torch.manual_seed(seed)
    return build_seq2seq(model_config(preset), V, V).eval()


def _pairs(n=6, seed=3):
    g = torch.Generator().manual_seed(seed)
    src = [torch.randint(4, V, (int(torch.randint(0, 7, (1,), generator=g)),),
                         generator=g).tolist() for _ in range(n)]
    tgt = [torch.randint(4, V, (int(torch.randint(0, 6, (1,), generator=g)),),
                         generator=g).tolist() for _ in range(n)]
    return src, tgt


def _step_log_probs(model, src, tgt):
    """[T + 1] log-probs of tgt + eos given src, by one teacher-forced pass of a single pair."""
    b = collate([(0, torch.tensor(src, dtype=torch.long), torch.tensor(tgt, dtype=torch.long))])
    with torch.no_grad():
        logits, _ = model(b.src, b.src_lengths, b.src_mask, b.tgt_in)
    gold = torch.tensor([*tgt, EOS_ID])
    return logits.log_softmax(-1)[0, torch.arange(len(gold)), gold]


def _teacher_forced(model, src, tgt):
    return float(_step_log_probs(model, src, tgt).sum())


@pytest.mark.parametrize("preset", ["lstm_luong_general", "gru_bahdanau", "lstm_noattn"])
def test_forced_log_probs_equal_the_teacher_forced_pass(preset):
    """Pairs of different lengths (empty ones included) batched together score as each alone,
    whatever the batch budget."""
    model = _model(preset)
    src, tgt = _pairs()
    assert any(not s for s in src) or any(not t for t in tgt)
    expected = [_teacher_forced(model, s, t) for s, t in zip(src, tgt, strict=True)]
    for budget in (1, 40, 4000):
        got = forced_log_probs(model, src, tgt, max_tokens=budget)
        torch.testing.assert_close(torch.tensor(got), torch.tensor(expected))
    assert all(v < 0 for v in expected)


def test_forced_log_probs_of_a_beam_hypothesis_are_its_log_prob():
    model = _model()
    src = [5, 9, 7, 4, 12]
    b = collate([(0, torch.tensor(src), None)])
    hyps = beam_search(model, b.src, b.src_lengths, b.src_mask,
                       search_options(beam=3, nbest=3, max_len_b=8, alpha=0.6))[0]
    finished = [h for h in hyps if len(h.attention) == len(h.tokens) + 1]  # ended by eos
    assert finished
    got = forced_log_probs(model, [src] * len(finished), [h.tokens for h in finished],
                           max_tokens=MAX_TOKENS)
    torch.testing.assert_close(torch.tensor(got), torch.tensor([h.log_prob for h in finished]))


def test_an_ensemble_scores_as_the_log_of_its_mean_probability():
    a, b = _model(seed=0), _model("gru_luong_general", seed=1)
    src, tgt = _pairs(n=3)
    alone = forced_log_probs(a, src, tgt, max_tokens=MAX_TOKENS)
    twice = forced_log_probs(Ensemble([a, a]), src, tgt, max_tokens=MAX_TOKENS)
    torch.testing.assert_close(torch.tensor(twice), torch.tensor(alone))
    mixed = forced_log_probs(Ensemble([a, b]), src, tgt, max_tokens=MAX_TOKENS)
    expected = [float((torch.logsumexp(torch.stack([_step_log_probs(a, s, t),
                                                      _step_log_probs(b, s, t)]), 0)
                       - math.log(2)).sum()) for s, t in zip(src, tgt, strict=True)]
    torch.testing.assert_close(torch.tensor(mixed), torch.tensor(expected))


def _hyp(tokens, score):
    return Hypothesis(tokens, score, score, torch.zeros(len(tokens) + 1, 3))


def test_rerank_adds_the_weighted_channel_score_per_source_token():
    channel = _model(seed=4)
    src_ids = [[5, 6, 7], [8, 9]]
    nbest = [[_hyp([4, 5], -1.0), _hyp([9, 9, 9], -1.2), _hyp([], -3.0)], [_hyp([6], -0.5)]]
    ch = {(i, k): forced_log_probs(channel, [h.tokens], [src_ids[i]], max_tokens=MAX_TOKENS)[0]
          for i, hyps in enumerate(nbest) for k, h in enumerate(hyps)}

    same = channel_rerank(channel, src_ids, nbest, weight=0.0, max_tokens=MAX_TOKENS)
    assert [[h.tokens for h in hyps] for hyps in same] == [[h.tokens for h in hyps]
                                                           for hyps in nbest]
    for w in (0.5, 50.0):
        out = channel_rerank(channel, src_ids, nbest, weight=w, max_tokens=MAX_TOKENS)
        for i, hyps in enumerate(nbest):
            want = sorted(((h.score + w * ch[(i, k)] / (len(src_ids[i]) + 1), h.tokens, h.log_prob)
                           for k, h in enumerate(hyps)), key=lambda x: -x[0])
            assert [h.tokens for h in out[i]] == [t for _, t, _ in want]
            assert [h.score for h in out[i]] == pytest.approx([s for s, _, _ in want])
            assert [h.log_prob for h in out[i]] == [lp for _, _, lp in want]  # direct, unchanged
    # a large weight orders by the channel alone
    by_channel = sorted(range(3), key=lambda k: -ch[(0, k)])
    big = channel_rerank(channel, src_ids, nbest, weight=1e6, max_tokens=MAX_TOKENS)
    assert [h.tokens for h in big[0]] == [nbest[0][k].tokens for k in by_channel]


def test_empty_nbest_lists_stay_empty():
    channel = _model()
    out = channel_rerank(channel, [[], [5]], [[], [_hyp([BOS_ID + 2], -1.0)]], weight=1.0,
                         max_tokens=MAX_TOKENS)
    assert out[0] == [] and len(out[1]) == 1
