"""Property-based tests (hypothesis) on random lengths and random text: collate and masks, the
bucketing sampler across ranks, SentencePiece on arbitrary Unicode."""

from __future__ import annotations

import unicodedata

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seq2seq.data.batch import collate
from seq2seq.data.corpus import read_lines
from seq2seq.data.errors import DataError
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, train_or_load

lengths = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(lengths)
def test_collate_pads_right_and_masks_exactly_the_real_tokens(pairs):
    examples = [(i, torch.randint(4, 50, (s,)), torch.randint(4, 50, (t,)))
                for i, (s, t) in enumerate(pairs)]
    b = collate(examples)
    B = len(pairs)
    assert b.src.shape == (B, max(s for s, _ in pairs) + 1) == b.src_mask.shape
    assert b.tgt_in.shape == b.tgt_out.shape == (B, max(t for _, t in pairs) + 1)
    for k, (i, src, tgt) in enumerate(examples):
        n = len(src) + 1
        assert b.src_lengths[k] == n and b.src_mask[k].sum() == n and b.src_mask[k, :n].all()
        assert torch.equal(b.src[k, :n], torch.cat([src, torch.tensor([EOS_ID])]))
        assert (b.src[k, n:] == PAD_ID).all()
        assert b.tgt_in[k, 0] == BOS_ID and torch.equal(b.tgt_in[k, 1:len(tgt) + 1], tgt)
        assert b.tgt_out[k, len(tgt)] == EOS_ID and torch.equal(b.tgt_out[k, :len(tgt)], tgt)
        assert (b.tgt_out[k, len(tgt) + 1:] == PAD_ID).all()
        assert b.ids[k] == i


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60)), min_size=1, max_size=300),
       st.integers(60, 400), st.integers(1, 4), st.integers(0, 3))
@example([(1, 1)], 60, 2, 0)  # more devices than examples: refused
@example([(1, 1)] * 3, 60, 2, 0)  # one batch of three, halved to give each of two ranks one
def test_sampler_ranks_share_every_epoch_exactly_once_within_budget(pairs, budget, world, epoch):
    src, tgt = zip(*pairs, strict=True)
    views = [BucketBatchSampler(src, tgt, max_tokens=budget, seed=7, num_replicas=world, rank=r)
             for r in range(world)]
    for v in views:
        v.set_epoch(epoch)
    single = BucketBatchSampler(src, tgt, max_tokens=budget, seed=7)
    single.set_epoch(epoch)
    if len(pairs) < -(-len(single) // world) * world:  # too few examples to split into W equal shares
        with pytest.raises(DataError, match="use fewer devices"):
            list(views[0])
        return
    batches = [list(v) for v in views]
    assert len({len(b) for b in batches}) == 1 and all(len(v) == len(b)
                                                       for v, b in zip(views, batches, strict=True))
    seen = sorted(i for rank in batches for batch in rank for i in batch)
    assert seen == list(range(len(pairs)))
    for batch in (b for rank in batches for b in rank):
        assert batch and len(batch) * max(max(src[i], tgt[i]) for i in batch) <= budget


@pytest.fixture(scope="module")
def lines(data_root):
    return read_lines(data_root / "multi30k" / "train.de.gz")[:3000]


@pytest.fixture(scope="module")
def tokenizer(lines, tmp_path_factory):
    return train_or_load(lines, 1000, "unigram", tmp_path_factory.mktemp("spm"), "prop")


@pytest.fixture(scope="module")
def alphabet(lines):
    """The training text's characters that NFKC normalization leaves alone."""
    chars = {c for line in lines for c in line if not c.isspace()}
    return "".join(sorted(c for c in chars if unicodedata.normalize("NFKC", c) == c))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_sentencepiece_takes_any_unicode(tokenizer, text):
    (ids,) = tokenizer.encode([text])
    assert all(4 <= i < len(tokenizer) or i == 1 for i in ids)  # pieces or unk, never specials
    (back,) = tokenizer.decode([ids])
    assert isinstance(back, str)
    if not text.strip():
        assert back == ""


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_sentencepiece_round_trips_text_in_its_alphabet(tokenizer, alphabet, data):
    words = st.text(alphabet=alphabet, min_size=1, max_size=12)
    text = " ".join(data.draw(st.lists(words, min_size=1, max_size=12)))
    (ids,) = tokenizer.encode([text])
    assert tokenizer.decode([ids]) == [text]
