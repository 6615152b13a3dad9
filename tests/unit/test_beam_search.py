import itertools

import pytest
import torch

from seq2seq.data.batch import collate
from seq2seq.data.tokenizer import BOS_ID, EOS_ID
from seq2seq.decoding.beam_search import beam_search
from seq2seq.decoding.greedy import greedy_decode
from seq2seq.decoding.penalties import block_repeated_ngrams, length_penalty
from seq2seq.decoding.sampling import sample, top_k_top_p_filter
from seq2seq.models.seq2seq import build_seq2seq
from tests.conftest import LIMITS, model_config, search_options


def _model(V, preset="lstm_bahdanau", seed=0):
    torch.manual_seed(seed)
    return build_seq2seq(model_config(preset), V, V).eval()


def _sources(V, lengths=(7, 2, 5, 1, 4), seed=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, V, (n,), generator=g) for n in lengths]


def _exhaustive_best(model, src, V, max_tokens, alpha):
    """Best score over every output of up to max_tokens tokens, by teacher forcing."""
    b = collate([(0, src, None)])
    words = [v for v in range(V) if v != EOS_ID]
    best = (float("-inf"), None)
    for n in range(max_tokens + 1):
        for y in itertools.product(words, repeat=n):
            ends = n < max_tokens  # at the limit a hypothesis stops without eos
            gold = list(y) + ([EOS_ID] if ends else [])
            tgt_in = torch.tensor([[BOS_ID, *gold[:-1]]]) if gold else None
            if tgt_in is None:
                continue
            with torch.no_grad():
                logits, _ = model(b.src, b.src_lengths, b.src_mask, tgt_in)
            logp = logits.log_softmax(-1)[0, torch.arange(len(gold)), gold].sum()
            score = float(logp) / length_penalty(len(gold), alpha)
            if score > best[0]:
                best = (score, list(y))
    return best


@pytest.mark.parametrize("preset", ["gru_bahdanau", "transformer", "transformer_lstm"])
@pytest.mark.parametrize("alpha", [0.0, 0.6])
@pytest.mark.parametrize("seed", [0, 1])
def test_wide_beam_finds_the_exhaustive_best(alpha, seed, preset):
    V = 6  # pad, unk, bos, eos and two words
    model = _model(V, preset, seed=seed)
    src = torch.tensor([4, 5, 4])
    score, tokens = _exhaustive_best(model, src, V, 4, alpha)
    b = collate([(0, src, None)])
    hyp = beam_search(model, b.src, b.src_lengths, b.src_mask,
                      search_options(beam=V, alpha=alpha, max_len_a=0, max_len_b=4))[0][0]
    assert hyp.tokens == tokens
    assert hyp.score == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("preset", ["lstm_bahdanau", "gru_luong_general", "transformer",
                                    "transformer_lstm"])
def test_batch_invariance(preset):
    V = 30
    model = _model(V, preset)
    srcs = _sources(V)
    b = collate([(i, s, None) for i, s in enumerate(srcs)])
    together = beam_search(model, b.src, b.src_lengths, b.src_mask,
                           search_options(beam=4, nbest=2, alpha=0.6))
    for i, s in enumerate(srcs):
        one = collate([(0, s, None)])
        alone = beam_search(model, one.src, one.src_lengths, one.src_mask,
                            search_options(beam=4, nbest=2, alpha=0.6))[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]
        for x, y in zip(alone, together[i], strict=True):
            assert x.score == pytest.approx(y.score, abs=1e-4)


def test_beam_one_is_greedy():
    V = 30
    model = _model(V)
    b = collate([(i, s, None) for i, s in enumerate(_sources(V))])
    greedy = [h[0].tokens for h in greedy_decode(model, b.src, b.src_lengths, b.src_mask,
                                                  **LIMITS)]
    assert [h[0].tokens for h in beam_search(model, b.src, b.src_lengths, b.src_mask,
                                             search_options(beam=1, alpha=0.6))] == greedy
    # the beam machinery itself (a no-op constraint keeps it from the greedy shortcut), with one
    # beam and no length penalty, is greedy too
    forced = beam_search(model, b.src, b.src_lengths, b.src_mask,
                         search_options(beam=1, alpha=0.0, no_repeat_ngram_size=1000))
    assert [h[0].tokens for h in forced] == greedy


def test_nbest_lists_are_sorted_by_score():
    V = 30
    model = _model(V)
    b = collate([(i, s, None) for i, s in enumerate(_sources(V))])
    for hyps in beam_search(model, b.src, b.src_lengths, b.src_mask,
                            search_options(beam=5, nbest=5, alpha=0.6)):
        assert len(hyps) == 5
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 5


def test_max_len_is_honoured_per_sentence():
    """Each sentence's outputs hold at most 0.5 * its own source length (eos included) + 2
    tokens; the untrained model, unconstrained, goes past every one of those limits."""
    V = 30
    model = _model(V)
    srcs = _sources(V)  # 7, 2, 5, 1 and 4 tokens
    b = collate([(i, s, None) for i, s in enumerate(srcs)])
    limits = [int(0.5 * (len(s) + 1) + 2) for s in srcs]  # 6, 3, 5, 3, 4
    free = beam_search(model, b.src, b.src_lengths, b.src_mask,
                       search_options(beam=3, nbest=3, max_len_a=0, max_len_b=50, alpha=0.6))
    assert all(len(hyps[0].tokens) > limit for hyps, limit in zip(free, limits, strict=True))
    limited = beam_search(model, b.src, b.src_lengths, b.src_mask,
                          search_options(beam=3, nbest=3, max_len_a=0.5, max_len_b=2, alpha=0.6))
    for hyps, limit in zip(limited, limits, strict=True):
        assert len(hyps) == 3 and all(len(h.tokens) <= limit for h in hyps), limit


def _ends_at_once():
    """A model whose unconstrained beam search ends every one of three sentences at once (the
    empty output), and its batch."""
    V = 8
    return _model(V, seed=2), collate([(i, s, None) for i, s in enumerate(_sources(V, (6, 6, 6)))])


def test_min_len_delays_eos():
    model, b = _ends_at_once()
    free = beam_search(model, b.src, b.src_lengths, b.src_mask, search_options(beam=3, alpha=0.6))
    assert [h[0].tokens for h in free] == [[], [], []]  # the control: eos comes first
    for hyps in beam_search(model, b.src, b.src_lengths, b.src_mask,
                            search_options(beam=3, min_len=4, alpha=0.6)):
        assert len(hyps[0].tokens) >= 4


def _grams(tokens: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def test_no_repeat_ngram_size_blocks_repeats():
    V = 8  # few words, so an unconstrained search repeats itself
    model = _model(V, seed=3)
    b = collate([(i, s, None) for i, s in enumerate(_sources(V, (6, 6, 6)))])
    limits = {"max_len_a": 3, "max_len_b": 10, "alpha": 0.6}
    free = [h[0].tokens for h in beam_search(model, b.src, b.src_lengths, b.src_mask,
                                             search_options(beam=3, **limits))]
    for n in (1, 2, 3):
        # the control: the same search without the constraint repeats an n-gram
        assert any(len(_grams(t, n)) > len(set(_grams(t, n))) for t in free), n
        for hyps in beam_search(model, b.src, b.src_lengths, b.src_mask,
                                search_options(beam=3, no_repeat_ngram_size=n, **limits)):
            toks = hyps[0].tokens
            assert len(toks) >= n and len(_grams(toks, n)) == len(set(_grams(toks, n))), (n, toks)


def test_block_repeated_ngrams_unit():
    logp = torch.zeros(1, 10)
    history = torch.tensor([[5, 6, 7, 5]])
    out = block_repeated_ngrams(logp, history, 2)  # "5 6" seen: after 5, 6 is banned
    assert torch.isinf(out[0, 6]) and torch.isfinite(out[0, [0, 5, 7]]).all()


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.05, 0.3, 0.15]])
    kept = torch.isfinite(top_k_top_p_filter(probs.log(), top_k=0, top_p=0.8))
    assert kept.tolist() == [[True, False, True, False]]  # 0.5 + 0.3 reaches 0.8
    kept = torch.isfinite(top_k_top_p_filter(probs.log(), top_k=0, top_p=0.81))
    assert kept.tolist() == [[True, False, True, True]]
    kept = torch.isfinite(top_k_top_p_filter(probs.log(), top_k=1, top_p=1.0))
    assert kept.tolist() == [[True, False, False, False]]


def test_sampling_repeats_with_its_seed_differs_with_another_and_respects_top_k():
    V = 30
    model = _model(V)
    b = collate([(i, s, None) for i, s in enumerate(_sources(V))])

    def samples(seed):
        return [[h.tokens for h in x] for x in sample(
            model, b.src, b.src_lengths, b.src_mask, search_options(sample=True, nbest=3,
                                                                    seed=seed))]

    a = samples(7)
    assert samples(7) == a
    assert all(len(x) == 3 for x in a)
    assert samples(8) != a
    greedy = [h[0].tokens for h in greedy_decode(model, b.src, b.src_lengths, b.src_mask,
                                                  **LIMITS)]
    top1 = sample(model, b.src, b.src_lengths, b.src_mask,
                  search_options(sample=True, top_k=1, seed=1, nbest=1))
    assert [x[0].tokens for x in top1] == greedy
