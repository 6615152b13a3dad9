import pytest
import torch

from seq2seq.data.batch import collate
from seq2seq.decoding.greedy import greedy_decode
from seq2seq.models.seq2seq import build_seq2seq
from tests.conftest import LIMITS, model_config

V = 30


def _model(preset="lstm_bahdanau"):
    torch.manual_seed(0)
    return build_seq2seq(model_config(preset), V, V).eval()


def _sources():
    g = torch.Generator().manual_seed(3)
    return [torch.randint(4, V, (n,), generator=g) for n in (7, 2, 5, 1)]


def test_batch_invariance():
    model = _model()
    srcs = _sources()
    b = collate([(i, s, None) for i, s in enumerate(srcs)])
    together = greedy_decode(model, b.src, b.src_lengths, b.src_mask, **LIMITS)
    for i, s in enumerate(srcs):
        one = collate([(0, s, None)])
        alone = greedy_decode(model, one.src, one.src_lengths, one.src_mask, **LIMITS)
        (a,), (t,) = alone[0], together[i]
        assert a.tokens == t.tokens
        assert a.score == a.log_prob
        assert a.score == pytest.approx(t.score, rel=1e-4, abs=1e-4)
        torch.testing.assert_close(a.attention, t.attention, rtol=1e-4, atol=1e-5)


def test_max_len_is_honoured_and_attention_shapes():
    model = _model("gru_luong_general")
    b = collate([(i, s, None) for i, s in enumerate(_sources())])
    hyps = greedy_decode(model, b.src, b.src_lengths, b.src_mask, max_len_a=0.0, max_len_b=3)
    for (h,), n in zip(hyps, b.src_lengths.tolist(), strict=True):
        toks, att = h.tokens, h.attention
        assert len(toks) <= 3
        assert att.shape[1] == n and att.shape[0] in (len(toks), len(toks) + 1)
        torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[0]))


def test_scores_are_the_sum_of_token_log_probs():
    model = _model()
    b = collate([(0, _sources()[0], None)])
    hyps = greedy_decode(model, b.src, b.src_lengths, b.src_mask, **LIMITS)
    (hyp,) = hyps[0]
    tokens = hyp.tokens
    tgt_in = torch.tensor([[2, *tokens]])
    with torch.no_grad():
        logits, _ = model(b.src, b.src_lengths, b.src_mask, tgt_in)
    logp = logits.log_softmax(-1)[0]
    steps = hyp.attention.shape[0]  # eos is scored unless the length limit stopped it
    gold = (tokens + [3])[:steps]
    expected = sum(logp[t, g] for t, g in enumerate(gold))
    assert hyp.score == pytest.approx(float(expected), rel=1e-4, abs=1e-4)
