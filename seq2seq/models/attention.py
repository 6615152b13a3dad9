"""Attention: score encoder states against a decoder query, then average them.

Every variant shares one signature, `(query, keys, values, mask) -> (context, weights)`, and
`project_keys(values)` computes what only depends on the encoder once per batch.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis in float32, giving exactly zero weight where mask is False.

    scores: [B, T, S]; mask: [B, S] bool, True = real token. Uses the lowest finite float32
    rather than -inf, so half-precision inputs and all-masked rows never produce NaN.
    """
    scores = scores.float().masked_fill(~mask[:, None, :], torch.finfo(torch.float32).min)
    return torch.softmax(scores, dim=-1)


class Attention(nn.Module):
    """Base: subclasses define `score`. Sizes are wired in code.

    Args:
        query_size: decoder hidden size Hq.
        value_size: encoder output size Hv.
    Class attributes: `name`, the config name results.json shows; `before_rnn`: True when the query is the previous decoder state and the
    context is an input of the decoder RNN (Bahdanau); False when the query is the new state
    and the context only feeds the output layer (Luong).
    """

    before_rnn = False
    name = "attention"  # the config name (conf/model/attention/<name>.yaml)

    def __init__(self, query_size: int, value_size: int):
        super().__init__()
        self.query_size, self.value_size = query_size, value_size

    def project_keys(self, values: torch.Tensor) -> torch.Tensor:
        """values: [B, S, Hv] -> keys [B, S, Hk], computed once per batch."""
        return values

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query: [B, T, Hq]; keys: [B, S, Hk] -> scores [B, T, S]."""
        raise NotImplementedError

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query: [B, T, Hq]; keys: [B, S, Hk]; values: [B, S, Hv]; mask: [B, S] bool.

        Returns context [B, T, Hv] and weights [B, T, S] (float32, rows sum to 1).
        """
        weights = masked_softmax(self.score(query, keys), mask)
        context = torch.bmm(weights.to(values.dtype), values)  # [B, T, Hv]
        return context, weights


class NoAttention(Attention):
    """The vanilla encoder-decoder baseline: one fixed context, the mean of the source states."""

    name = "none"

    def forward(self, query, keys, values, mask):
        m = mask.to(values.dtype)[:, None, :]  # [B, 1, S]
        weights = m / m.sum(-1, keepdim=True)
        context = torch.bmm(weights, values).expand(-1, query.size(1), -1)  # [B, T, Hv]
        return context, weights.float().expand(-1, query.size(1), -1)


class BahdanauAttention(Attention):
    """Additive attention (Bahdanau et al. 2015, eq. 6): v^T tanh(W q + U h_j).

    The query is the previous decoder state; the context is fed to the decoder RNN.
    """

    name = "bahdanau"

    before_rnn = True

    def __init__(self, query_size: int, value_size: int, attention_size: int | None = None):
        super().__init__(query_size, value_size)
        attention_size = attention_size or query_size
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)
        self.key_proj = nn.Linear(value_size, attention_size, bias=False)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def project_keys(self, values):
        return self.key_proj(values)  # [B, S, A]

    def score(self, query, keys):
        q = self.query_proj(query)  # [B, T, A]
        return self.v(torch.tanh(q[:, :, None, :] + keys[:, None, :, :])).squeeze(-1)  # [B, T, S]


class LuongDotAttention(Attention):
    """Luong et al. 2015 dot score: h_t^T h_j. Needs equal decoder and encoder sizes."""

    name = "luong_dot"

    def __init__(self, query_size: int, value_size: int):
        super().__init__(query_size, value_size)
        if query_size != value_size:
            raise ValueError(
                f"luong_dot attention needs the decoder hidden size ({query_size}) to equal the "
                f"encoder output size ({value_size}); change model.decoder.hidden_size or "
                "model.encoder.hidden_size, or use luong_general"
            )

    def score(self, query, keys):
        return torch.bmm(query, keys.transpose(1, 2))  # [B, T, S]


class LuongGeneralAttention(Attention):
    """Luong et al. 2015 general score: h_t^T W h_j, with W h_j projected once per batch."""

    name = "luong_general"

    def __init__(self, query_size: int, value_size: int):
        super().__init__(query_size, value_size)
        self.key_proj = nn.Linear(value_size, query_size, bias=False)

    def project_keys(self, values):
        return self.key_proj(values)  # [B, S, Hq]

    def score(self, query, keys):
        return torch.bmm(query, keys.transpose(1, 2))  # [B, T, S]


class LuongConcatAttention(BahdanauAttention):
    """Luong et al. 2015 concat score: v^T tanh(W [h_t; h_j]), with the new decoder state h_t."""

    name = "luong_concat"

    before_rnn = False
