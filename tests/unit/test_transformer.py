"""The Transformer encoder and decoder (seq2seq/models/transformer.py) and their hybrids with
the RNN parts honour the contract: masks, causality, cached steps, beam reordering, bf16."""

import math

import pytest
import torch

from seq2seq.decoding.beam_search import beam_search
from seq2seq.decoding.greedy import greedy_decode
from seq2seq.models.attention import LuongGeneralAttention
from seq2seq.models.contract import EncoderOutput
from seq2seq.models.rnn import RNNDecoder, RNNEncoder
from seq2seq.models.seq2seq import build_seq2seq
from seq2seq.models.transformer import TransformerDecoder, TransformerEncoder, sinusoids
from seq2seq.precision import cast_weights
from tests.conftest import LIMITS, model_config, search_options

V = 23
# the Transformer, a Transformer encoder under an LSTM decoder, a BiGRU under a Transformer
# decoder (encoder output 24 projected to the decoder's 16)
MODELS = {
    "transformer": ("transformer", []),
    "transformer_lstm": ("transformer_lstm", []),
    "transformer_tiny": ("transformer_tiny", []),  # one embedding matrix on both sides
    "gru_transformer": ("transformer", ["model/encoder=gru"]),
}


def _model(name: str, overrides=(), seed: int = 0):
    preset, extra = MODELS[name]
    torch.manual_seed(seed)
    return build_seq2seq(model_config(preset, [*extra, *overrides]), V, V).eval()


def _batch(S: int = 6):
    torch.manual_seed(1)
    lengths = torch.tensor([S, S - 2, 2])
    mask = torch.arange(S)[None] < lengths[:, None]
    src = torch.randint(4, V, (3, S)).masked_fill(~mask, 0)
    tgt_in = torch.randint(4, V, (3, 5))
    return src, lengths, mask, tgt_in


def test_shapes_and_parts():
    model = _model("transformer")
    src, lengths, mask, tgt_in = _batch()
    enc = model.encoder(src, lengths, mask)
    assert enc.states.shape == (3, 6, 16) and enc.summary is None
    assert (enc.states[~mask] == 0).all()  # zero at padding
    logits, weights = model(src, lengths, mask, tgt_in)
    assert logits.shape == (3, 5, V) and weights.shape == (3, 5, 6)
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
    assert model.decoder.describe() == "transformer" == model.encoder.describe()
    assert model.decoder.attention_name() == "multihead"
    assert model.decoder.output.weight is model.decoder.embed.embedding.weight  # tied


def test_sinusoids_follow_the_paper():
    pe = sinusoids(3, 2, 8)  # positions 3 and 4
    i = 1  # the second frequency, dimensions 2 and 3
    torch.testing.assert_close(pe[1, 2 * i], torch.tensor(math.sin(4 / 10000 ** (2 * i / 8))))
    torch.testing.assert_close(pe[0, 2 * i + 1], torch.tensor(math.cos(3 / 10000 ** (2 * i / 8))))


def _capture(module, store: list):
    """Record the attention weights [B, h, T, L] a MultiHeadAttention returns."""
    return module.register_forward_hook(lambda m, args, out: store.append(out[1]))


def test_masked_source_positions_get_exactly_zero_weight():
    model = _model("transformer")
    src, lengths, mask, tgt_in = _batch()
    enc_w, cross_w = [], []
    hooks = [_capture(model.encoder.layers[0].self_attn, enc_w),
             _capture(model.decoder.layers[-1].cross_attn, cross_w)]
    _, weights = model(src, lengths, mask, tgt_in)
    for h in hooks:
        h.remove()
    pad = ~mask  # [B, S]
    assert (enc_w[0] * pad[:, None, None, :]).abs().max() == 0  # every query, every head
    assert (cross_w[0] * pad[:, None, None, :]).abs().max() == 0
    assert (weights * pad[:, None, :]).abs().max() == 0
    assert (weights[:, :, :2] > 0).all()  # real positions do get weight


@pytest.mark.parametrize("name", MODELS)
def test_padding_a_sentence_changes_neither_its_encoding_nor_its_logits(name):
    model = _model(name)
    src, lengths, mask, tgt_in = _batch()
    S = int(lengths[1])
    alone = (src[1:2, :S], lengths[1:2], mask[1:2, :S], tgt_in[1:2])
    logits_alone, w_alone = model(*alone)
    logits, w = model(src, lengths, mask, tgt_in)
    torch.testing.assert_close(logits[1:2], logits_alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w[1:2, :, :S], w_alone, rtol=1e-5, atol=1e-6)
    enc = model.encoder(src, lengths, mask).states
    torch.testing.assert_close(enc[1:2, :S], model.encoder(*alone[:3]).states,
                               rtol=1e-5, atol=1e-5)


def test_a_future_target_token_does_not_change_earlier_logits():
    model = _model("transformer")
    src, lengths, mask, tgt_in = _batch()
    logits, _ = model(src, lengths, mask, tgt_in)
    changed = tgt_in.clone()
    changed[:, 3] = (changed[:, 3] + 1 - 4) % (V - 4) + 4
    logits2, _ = model(src, lengths, mask, changed)
    torch.testing.assert_close(logits2[:, :3], logits[:, :3], rtol=0, atol=1e-6)
    assert not torch.allclose(logits2[:, 3:], logits[:, 3:])  # the test can see a change


@pytest.mark.parametrize("name", MODELS)
def test_cached_steps_equal_the_parallel_forward(name):
    model = _model(name)
    src, lengths, mask, tgt_in = _batch()
    logits, weights = model(src, lengths, mask, tgt_in)
    state = model.encode(src, lengths, mask)
    for t in range(tgt_in.size(1)):
        step_logits, state, step_w = model.decoder.step(tgt_in[:, t], state)
        torch.testing.assert_close(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(step_w, weights[:, t], rtol=1e-5, atol=1e-5)
    if isinstance(model.decoder, TransformerDecoder):
        assert state.position == tgt_in.size(1)
        assert state.self_keys[0].shape == (3, 2, tgt_in.size(1), 8)  # [B, h, t, dk]


def test_a_step_costs_one_position():
    """A step feeds one token through the layers, whatever the length of the prefix: the
    self-attention query projection sees [B, 1, H] at the fifth step too."""
    model = _model("transformer")
    src, lengths, mask, tgt_in = _batch()
    state = model.encode(src, lengths, mask)
    seen = []
    model.decoder.layers[0].self_attn.q_proj.register_forward_hook(
        lambda m, args, out: seen.append(tuple(args[0].shape)))
    for t in range(5):
        _, state, _ = model.decoder.step(tgt_in[:, t], state)
    assert seen == [(3, 1, 16)] * 5


def test_index_select_reorders_caches_and_keeps_the_source_side():
    model = _model("transformer")
    src, lengths, mask, tgt_in = _batch()
    K = 2
    state = model.encode(src, lengths, mask).index_select(torch.arange(3).repeat_interleave(K))
    for t in range(2):
        _, state, _ = model.decoder.step(tgt_in[:, t].repeat_interleave(K), state)
    rows = torch.tensor([1, 1, 2, 3, 5, 4])  # each row stays within its sentence's block
    moved, copied = state.index_select(rows, same_source=True), state.index_select(rows)
    assert all(a is b for a, b in zip(moved.memory_keys, state.memory_keys, strict=True))
    assert moved.src_mask is state.src_mask
    assert moved.position == copied.position == 2
    for a, b, full in zip(moved.self_keys, copied.self_keys, state.self_keys, strict=True):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, full[rows])
    for a, b in zip(moved.memory_values, copied.memory_values, strict=True):
        torch.testing.assert_close(a, b)
    sub = state.index_select(torch.tensor([4]))
    assert sub.src_mask.shape == (1, 6) and sub.memory_keys[0].shape[0] == 1


@pytest.mark.parametrize("name", MODELS)
def test_beam_1_is_greedy_and_beam_3_gives_an_nbest(name):
    model = _model(name, seed=3)
    src, lengths, mask, _ = _batch()
    greedy = greedy_decode(model, src, lengths, mask, **LIMITS)
    # coverage > 0 sends beam 1 through the beam search loop instead of greedy_decode
    beam1 = beam_search(model, src, lengths, mask, search_options(beam=1, alpha=0.0,
                                                                  coverage=1e-9))
    assert [h[0].tokens for h in beam1] == [h[0].tokens for h in greedy]
    beam3 = beam_search(model, src, lengths, mask, search_options(beam=3, nbest=3))
    assert [len(h) for h in beam3] == [3, 3, 3]
    for hyps, n in zip(beam3, lengths.tolist(), strict=True):
        assert all(h.attention.shape[-1] == n for h in hyps)
        assert hyps[0].score >= hyps[-1].score


def test_attention_heads_returns_that_head():
    src, lengths, mask, tgt_in = _batch()
    mean_model = _model("transformer")
    head_model = _model("transformer", ["model.decoder.attention_heads=1"])
    store = []
    _capture(head_model.decoder.layers[-1].cross_attn, store)
    _, w_head = head_model(src, lengths, mask, tgt_in)
    _, w_mean = mean_model(src, lengths, mask, tgt_in)  # same seed, same weights
    torch.testing.assert_close(w_head, store[0][:, 1])
    torch.testing.assert_close(w_mean, store[0].mean(1))
    assert not torch.allclose(w_head, w_mean)
    with pytest.raises(ValueError, match="attention_heads=2"):
        _model("transformer", ["model.decoder.attention_heads=2"])


def test_bf16_weights_keep_float32_attention_with_exact_zeros():
    model = _model("transformer")
    src, lengths, mask, tgt_in = _batch()
    with cast_weights(model, torch.bfloat16):
        logits, weights = model(src, lengths, mask, tgt_in)
        state = model.encode(src, lengths, mask)
        _, _, step_w = model.decoder.step(tgt_in[:, 0], state)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    assert weights.dtype == torch.float32 and step_w.dtype == torch.float32
    assert (weights * ~mask[:, None, :]).abs().max() == 0
    assert (step_w * ~mask).abs().max() == 0
    assert next(model.parameters()).dtype == torch.float32  # cast back after the block
    with cast_weights(model, torch.bfloat16):
        logits, _ = model(src, lengths, mask, tgt_in)
    logits.float().logsumexp(-1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_scheduled_sampling_is_refused():
    model = _model("transformer")
    src, lengths, mask, tgt_in = _batch()
    with pytest.raises(ValueError, match="scheduled_sampling=none"):
        model(src, lengths, mask, tgt_in, teacher_forcing_ratio=0.5)


def test_tying_needs_equal_embedding_and_hidden_sizes():
    with pytest.raises(ValueError, match=r"model\.emb_size \(16\).*model\.decoder\.hidden_size"
                                         r" \(32\)"):
        _model("transformer", ["model.decoder.hidden_size=32"])
    model = _model("transformer", ["model.decoder.hidden_size=32", "model.tie_embeddings=false"])
    assert model.decoder.embed.proj is not None  # E = 16 projected to H = 32


def test_the_transformer_preset_needs_an_empty_attention_group():
    cfg = model_config("transformer")
    assert cfg.get("attention") is None  # build_seq2seq builds no attention part
    with pytest.raises(ValueError, match="must be empty"):
        build_seq2seq(model_config("transformer", ["model/attention=luong_general"]), V, V)


def test_presets_at_full_size():
    """model=transformer sits near 8M parameters with a joint 8,000 vocabulary (tied target
    embeddings); model=transformer_lstm puts an LSTM decoder with Luong general attention and
    input feeding over the Transformer encoder."""
    model = build_seq2seq(model_config("transformer", small=False), 8000, 8000)
    assert isinstance(model.encoder, TransformerEncoder)
    assert isinstance(model.decoder, TransformerDecoder)
    assert 7_000_000 <= sum(p.numel() for p in model.parameters()) <= 9_000_000
    hybrid = build_seq2seq(model_config("transformer_lstm", small=False), 8000, 8000)
    assert isinstance(hybrid.encoder, TransformerEncoder)
    assert isinstance(hybrid.decoder, RNNDecoder) and hybrid.decoder.is_lstm
    assert isinstance(hybrid.decoder.attention, LuongGeneralAttention)
    assert hybrid.decoder.input_feeding
    assert hybrid.decoder.output.weight is hybrid.decoder.embedding.weight


def test_the_tiny_preset_at_full_size():
    """model=transformer_tiny: d_model 128, 4 + 4 layers, FFN 256, one matrix for the source and
    target embeddings and the output layer: 2.35M parameters with a joint 8,000 vocabulary."""
    model = build_seq2seq(model_config("transformer_tiny", small=False), 8000, 8000)
    enc, dec = model.encoder, model.decoder
    assert len(enc.layers) == 4 == len(dec.layers)
    assert enc.layers[0].ff[0].out_features == 256 == dec.layers[0].ff[0].out_features
    assert enc.embed.embedding.weight is dec.embed.embedding.weight is dec.output.weight
    assert dec.output.weight.shape == (8000, 128)
    assert sum(p.numel() for p in model.parameters()) == 2_349_568


def test_rnn_encoder_under_transformer_decoder_projects_its_states():
    model = _model("gru_transformer")
    assert isinstance(model.encoder, RNNEncoder) and model.encoder.output_size == 24
    assert model.decoder.memory_proj.in_features == 24


def test_decoder_runs_on_any_encoder_output():
    """The decoder needs only EncoderOutput.states, not a summary."""
    torch.manual_seed(0)
    dec = TransformerDecoder(vocab_size=V, emb_size=8, encoder_size=10, tie_embeddings=True,
                             hidden_size=8, num_layers=1, num_heads=2, ff_size=16, dropout=0.0,
                             attention_dropout=0.0).eval()
    mask = torch.tensor([[True, True, False]])
    state = dec.init_state(EncoderOutput(torch.randn(1, 3, 10)), mask)
    logits, attention = dec(torch.tensor([[1, 5, 6]]), state)
    assert logits.shape == (1, 3, V) and attention[..., 2].abs().max() == 0



@pytest.mark.parametrize("name", MODELS)
def test_a_few_updates_fit_one_batch(name):
    """Gradients reach every part: 30 Adam updates on one batch cut the loss by more than half."""
    model = _model(name).train()
    src, lengths, mask, tgt_in = _batch()
    tgt_out = torch.roll(tgt_in, -1, dims=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits, _ = model(src, lengths, mask, tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt_out.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    grads = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)


@pytest.mark.parametrize("name", ["transformer", "transformer_lstm"])
def test_share_all_embeddings_ties_source_target_and_output(name):
    """model.share_all_embeddings=true: one matrix for the source embedding, the target
    embedding and the output layer (V x E fewer parameters), trained by both sides."""
    tied = _model(name, ["model.share_all_embeddings=true"])
    separate = _model(name)
    src = next(m for m in tied.encoder.modules() if isinstance(m, torch.nn.Embedding))
    tgt = next(m for m in tied.decoder.modules() if isinstance(m, torch.nn.Embedding))
    assert src.weight is tgt.weight is tied.decoder.output.weight
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(separate) - count(tied) == V * 16
    assert src.weight[0].abs().sum() == 0  # the padding row stays zero
    src_ids, lengths, mask, tgt_in = _batch()
    tied.train()
    logits, _ = tied(src_ids, lengths, mask, tgt_in)
    logits.logsumexp(-1).sum().backward()
    # gradient from the source side alone: rows of tokens seen only in the source
    only_src = sorted(set(src_ids[mask].tolist()) - set(tgt_in.flatten().tolist()))
    assert only_src and src.weight.grad[only_src].abs().sum(-1).min() > 0


def test_share_all_embeddings_survives_bf16_casting_and_a_state_dict_round_trip():
    model = _model("transformer", ["model.share_all_embeddings=true"])
    src_ids, lengths, mask, tgt_in = _batch()
    with cast_weights(model, torch.bfloat16):
        assert model.encoder.embed.embedding.weight is model.decoder.output.weight
        assert model.encoder.embed.embedding.weight.dtype == torch.bfloat16
    copy = _model("transformer", ["model.share_all_embeddings=true"], seed=5)
    copy.load_state_dict(model.state_dict())
    assert copy.encoder.embed.embedding.weight is copy.decoder.embed.embedding.weight
    with torch.no_grad():
        assert torch.equal(copy(src_ids, lengths, mask, tgt_in)[0],
                           model(src_ids, lengths, mask, tgt_in)[0])


def test_share_all_embeddings_needs_one_vocabulary():
    with pytest.raises(ValueError, match=r"share_all_embeddings.*\(23, 16\).*\(30, 16\).*"
                                         r"joint_vocab"):
        build_seq2seq(model_config("transformer", ["model.share_all_embeddings=true"]), V, 30)
    from seq2seq.data.errors import DataError
    from seq2seq.pipeline import build
    from tests.conftest import compose_train
    cfg = compose_train(["model=transformer", "model.share_all_embeddings=true",
                         "data.joint_vocab=false"])
    with pytest.raises(DataError, match="data.joint_vocab=true"):
        build(cfg)
