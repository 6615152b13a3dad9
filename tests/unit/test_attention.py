import pytest
import torch

from seq2seq.models.attention import (
    BahdanauAttention,
    LuongConcatAttention,
    LuongDotAttention,
    LuongGeneralAttention,
    NoAttention,
    masked_softmax,
)

KINDS = [NoAttention, BahdanauAttention, LuongDotAttention, LuongGeneralAttention,
         LuongConcatAttention]


@pytest.mark.parametrize("cls", KINDS)
def test_padded_positions_get_zero_weight(cls):
    torch.manual_seed(0)
    B, T, S, H = 3, 4, 7, 8
    att = cls(query_size=H, value_size=H)
    values = torch.randn(B, S, H)
    lengths = torch.tensor([7, 4, 1])
    mask = torch.arange(S)[None] < lengths[:, None]  # [B, S]
    context, weights = att(torch.randn(B, T, H), att.project_keys(values), values, mask)
    assert context.shape == (B, T, H) and weights.shape == (B, T, S)
    assert torch.all(weights.masked_select(~mask[:, None, :].expand(B, T, S)) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, T))
    # a sentence of length 1 puts all its weight on its only token
    assert torch.all(weights[2, :, 0] == 1)


def test_context_ignores_padding_values():
    torch.manual_seed(0)
    att = BahdanauAttention(8, 8)
    values = torch.randn(1, 5, 8)
    mask = torch.tensor([[True, True, True, False, False]])
    q = torch.randn(1, 1, 8)
    ctx1, _ = att(q, att.project_keys(values), values, mask)
    noisy = values.clone()
    noisy[:, 3:] = 1e4
    ctx2, _ = att(q, att.project_keys(noisy), noisy, mask)
    torch.testing.assert_close(ctx1, ctx2)


def test_masked_softmax_is_finite_in_bfloat16():
    scores = torch.randn(2, 3, 4, dtype=torch.bfloat16)
    mask = torch.tensor([[True, False, False, False], [True, True, True, True]])
    w = masked_softmax(scores, mask)
    assert w.dtype == torch.float32 and torch.isfinite(w).all()
    assert torch.all(w[0, :, 1:] == 0)


def test_dot_attention_with_unequal_sizes_fails_clearly():
    with pytest.raises(ValueError, match="luong_dot.*decoder hidden size \\(512\\).*encoder "
                                         "output size \\(256\\)"):
        LuongDotAttention(query_size=512, value_size=256)
