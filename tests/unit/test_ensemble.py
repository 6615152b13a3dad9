"""Ensembles decode with the mean of the members' next-token distributions."""

import math

import pytest
import torch

from seq2seq.data.batch import collate
from seq2seq.data.tokenizer import BOS_ID, EOS_ID
from seq2seq.decoding.beam_search import beam_search
from seq2seq.decoding.greedy import greedy_decode
from seq2seq.decoding.sampling import sample
from seq2seq.models.ensemble import Ensemble
from seq2seq.models.seq2seq import build_seq2seq
from tests.conftest import model_config, search_options

V = 20


def _model(preset, seed, V=V):
    torch.manual_seed(seed)
    return build_seq2seq(model_config(preset), V, V).eval()


def _batch(lengths=(6, 3, 5), seed=2):
    g = torch.Generator().manual_seed(seed)
    return collate([(i, torch.randint(4, V, (n,), generator=g), None)
                    for i, n in enumerate(lengths)])


def _ensemble_log_prob(members, batch, row, tokens, eos=True):
    """log prod_t mean_m p_m(y_t | y_<t, x) of `tokens` (+ eos), by teacher forcing each
    member."""
    gold = [*tokens, EOS_ID] if eos else list(tokens)
    tgt_in = torch.tensor([[BOS_ID, *gold[:-1]]])
    src = batch.src[row : row + 1, : int(batch.src_lengths[row])]
    lengths, mask = batch.src_lengths[row : row + 1], batch.src_mask[row : row + 1, : src.size(1)]
    per_member = []
    with torch.no_grad():
        for m in members:
            logits, _ = m(src, lengths, mask, tgt_in)
            per_member.append(logits.log_softmax(-1)[0, torch.arange(len(gold)), gold])
    step = torch.logsumexp(torch.stack(per_member), dim=0) - math.log(len(members))
    return float(step.sum())


def test_step_is_the_log_of_the_mean_distribution():
    members = [_model("lstm_bahdanau", 0), _model("gru_luong_general", 1)]
    ens = Ensemble(members)
    b = _batch()
    prev = torch.full((len(b),), BOS_ID)
    logp, _, weights = ens.decoder.step(prev, ens.encode(b.src, b.src_lengths, b.src_mask))
    probs = [torch.softmax(m.decoder.step(prev, m.encode(b.src, b.src_lengths, b.src_mask))[0], -1)
             for m in members]
    torch.testing.assert_close(logp.exp(), (probs[0] + probs[1]) / 2)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(len(b)))
    assert weights.shape == b.src.shape
    torch.testing.assert_close(weights.sum(-1), torch.ones(len(b)))
    assert (weights[~b.src_mask] == 0).all()


def test_an_ensemble_of_copies_decodes_like_the_model():
    model = _model("lstm_luong_general", 0)
    b = _batch()
    single = beam_search(model, b.src, b.src_lengths, b.src_mask,
                         search_options(beam=4, nbest=2, alpha=0.6))
    double = beam_search(Ensemble([model, model]), b.src, b.src_lengths, b.src_mask,
                         search_options(beam=4, nbest=2, alpha=0.6))
    for s, d in zip(single, double, strict=True):
        assert [h.tokens for h in s] == [h.tokens for h in d]
        assert [h.score for h in s] == pytest.approx([h.score for h in d], abs=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
def test_search_scores_are_the_ensemble_probability(beam):
    """Beam search (and greedy) over two different architectures: each hypothesis' log_prob is
    the sum of the log mean probabilities of its tokens, recomputed by teacher forcing."""
    members = [_model("lstm_bahdanau", 0), _model("gru_luong_general", 1)]
    ens = Ensemble(members)
    b = _batch()
    hyps = beam_search(ens, b.src, b.src_lengths, b.src_mask,
                       search_options(beam=beam, alpha=0.0, max_len_a=0, max_len_b=30))
    assert any(h[0].tokens for h in hyps)
    for row, nbest in enumerate(hyps):
        h = nbest[0]
        ended = len(h.tokens) < 30  # else stopped at the length limit, without eos
        expected = _ensemble_log_prob(members, b, row, h.tokens, eos=ended)
        assert h.log_prob == pytest.approx(expected, abs=1e-4)
    greedy = greedy_decode(ens, b.src, b.src_lengths, b.src_mask, max_len_a=0, max_len_b=30)
    if beam == 1:
        assert [h[0].tokens for h in greedy] == [h[0].tokens for h in hyps]


def test_sampling_from_an_ensemble_repeats_with_its_seed_and_differs_with_another():
    ens = Ensemble([_model("lstm_bahdanau", 0), _model("gru_bahdanau", 1)])
    b = _batch()

    def samples(seed):
        return [[h.tokens for h in x] for x in sample(
            ens, b.src, b.src_lengths, b.src_mask, search_options(sample=True, nbest=2,
                                                                  seed=seed))]

    a = samples(5)
    assert samples(5) == a
    assert len(a) == len(b) and all(len(x) == 2 for x in a)
    assert samples(6) != a


def test_members_must_share_the_target_vocabulary():
    with pytest.raises(ValueError, match="different target vocabularies"):
        Ensemble([_model("gru_bahdanau", 0), _model("gru_bahdanau", 1, V=V + 1)])
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble([_model("gru_bahdanau", 0)])
