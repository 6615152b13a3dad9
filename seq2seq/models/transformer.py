"""Transformer encoder and decoder (Vaswani et al. 2017), pre-norm (Xiong et al. 2020).

Both honour the contract of seq2seq/models/contract.py, so either one can sit under or over
an RNN part: the encoder returns no summary (an RNN decoder's bridge then starts from the
masked mean of its states), and the decoder projects any encoder size to its own.

Every sublayer is LayerNorm -> attention or FFN -> dropout -> residual; a final LayerNorm
closes each stack. Attention scores and the softmax are float32 and masked with the lowest
finite float32 (as `masked_softmax` in attention.py), so masked keys get exactly zero weight and
bf16 weights never produce NaN. The decoder keeps the keys and values of the target prefix in
its state, so `step` costs one position, and `forward` runs the same arithmetic over all
positions at once under a causal mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from seq2seq.models import contract
from seq2seq.models.contract import Decoder, DecoderState, Encoder, EncoderOutput, StateTensor


def sinusoids(start: int, length: int, size: int, device=None) -> torch.Tensor:
    """The sinusoidal position encodings of positions start .. start + length - 1 (Vaswani et
    al. 2017, section 3.5) -> [length, size] float32."""
    pos = torch.arange(start, start + length, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, size, 2, dtype=torch.float32, device=device)
                     * (-math.log(10000.0) / size))  # [ceil(size / 2)]
    out = torch.zeros(length, size, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: size // 2])
    return out


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over `num_heads` heads, with its own q/k/v/out projections.

    Keys and values are projected by `project_kv` and passed in, so a decoder projects the
    encoder states once per batch and caches the keys and values of its target prefix.

    Args:
        hidden_size: H, the query size and the output size.
        num_heads: h; H must be divisible by it (dk = H / h).
        dropout: on the attention weights used for the context (the returned ones are not).
        key_size: size of what keys and values are projected from (default H).
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float,
                 key_size: int | None = None):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads "
                             f"{num_heads}")
        self.num_heads, self.head_size = num_heads, hidden_size // num_heads
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(key_size or hidden_size, hidden_size)
        self.v_proj = nn.Linear(key_size or hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, L, H] -> [B, h, L, dk]."""
        B, L, _ = x.shape
        return x.view(B, L, self.num_heads, self.head_size).transpose(1, 2)  # [B, h, L, dk]

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, L, Hk] -> keys, values [B, h, L, dk]."""
        return self._split(self.k_proj(x)), self._split(self.v_proj(x))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query: [B, T, H]; keys, values: [B, h, L, dk]; mask: [B or 1, T or 1, L] bool, True =
        may attend -> output [B, T, H], weights [B, h, T, L] float32 (exactly zero where the
        mask is False)."""
        q = self._split(self.q_proj(query))  # [B, h, T, dk]
        scores = torch.matmul(q.float(), keys.float().transpose(-1, -2))  # [B, h, T, L]
        scores = scores / math.sqrt(self.head_size)
        scores = scores.masked_fill(~mask[:, None], torch.finfo(torch.float32).min)
        weights = torch.softmax(scores, dim=-1)
        context = torch.matmul(self.dropout(weights).to(values.dtype), values)  # [B, h, T, dk]
        B, _, T, _ = context.shape
        context = context.transpose(1, 2).reshape(B, T, -1)  # [B, T, H]
        return self.out_proj(context), weights


class FeedForward(nn.Sequential):
    """Position-wise FFN: Linear(H, F) -> ReLU -> dropout -> Linear(F, H)."""

    def __init__(self, hidden_size: int, ff_size: int, dropout: float):
        super().__init__(nn.Linear(hidden_size, ff_size), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(ff_size, hidden_size))


class TokenEmbedding(nn.Module):
    """Token embeddings scaled by sqrt(E), projected to H when E != H, plus sinusoidal
    positions, then dropout.

    With E = H the scale is sqrt(d_model) as in Vaswani et al.; it brings embeddings of
    standard deviation 1/sqrt(E) (model.emb_init_std) to the size of the position encodings.
    """

    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int, dropout: float,
                 pad_id: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.scale = math.sqrt(emb_size)
        self.proj = nn.Linear(emb_size, hidden_size) if emb_size != hidden_size else None
        self.hidden_size = hidden_size
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """tokens: [B, L] long at positions start .. start + L - 1 -> [B, L, H]."""
        x = self.embedding(tokens) * self.scale  # [B, L, E]
        if self.proj is not None:
            x = self.proj(x)  # [B, L, H]
        pos = sinusoids(start, tokens.size(1), self.hidden_size, tokens.device)
        return self.dropout(x + pos.to(x.dtype))


class PreNormLayer(nn.Module):
    """The pre-norm sublayers of a Transformer layer: self-attention, cross-attention over the
    encoder when `cross`, and the FFN, each with its LayerNorm, registered in the order
    checkpoints (and their optimizer states) list the parameters."""

    cross: bool = False

    def __init__(self, hidden_size: int, num_heads: int, ff_size: int, dropout: float,
                 attention_dropout: float):
        super().__init__()
        self.self_norm = nn.LayerNorm(hidden_size)
        self.self_attn = MultiHeadAttention(hidden_size, num_heads, attention_dropout)
        if self.cross:
            self.cross_norm = nn.LayerNorm(hidden_size)
            self.cross_attn = MultiHeadAttention(hidden_size, num_heads, attention_dropout)
        self.ff_norm = nn.LayerNorm(hidden_size)
        self.ff = FeedForward(hidden_size, ff_size, dropout)
        self.dropout = nn.Dropout(dropout)


class EncoderLayer(PreNormLayer):
    """Pre-norm self-attention and FFN sublayers."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: [B, S, H]; mask: [B, 1, S] bool -> [B, S, H]."""
        h = self.self_norm(x)
        k, v = self.self_attn.project_kv(h)
        x = x + self.dropout(self.self_attn(h, k, v, mask)[0])
        return x + self.dropout(self.ff(self.ff_norm(x)))


class TransformerEncoder(Encoder):
    """A stack of pre-norm self-attention layers over embedded source tokens.

    Args:
        vocab_size: source vocabulary size V (wired in code).
        emb_size: embedding size E (wired in code from model.emb_size); projected to H if
            it differs.
        hidden_size: d_model H, the size of every layer and of the output.
        num_layers: stacked layers.
        num_heads: attention heads (H must be divisible by it).
        ff_size: inner size of the position-wise FFN.
        dropout: on the embeddings, each sublayer's output and inside the FFN.
        attention_dropout: on the attention weights.
        pad_id: padding id (its embedding stays zero).
    """

    name = "transformer"

    def __init__(self, *, vocab_size: int, emb_size: int, hidden_size: int, num_layers: int,
                 num_heads: int, ff_size: int, dropout: float, attention_dropout: float,
                 pad_id: int = 0):
        super().__init__()
        self.embed = TokenEmbedding(vocab_size, emb_size, hidden_size, dropout, pad_id)
        self.layers = nn.ModuleList(
            EncoderLayer(hidden_size, num_heads, ff_size, dropout, attention_dropout)
            for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(hidden_size)
        self.output_size = hidden_size

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor,
                src_mask: torch.Tensor) -> EncoderOutput:
        """src: [B, S] long; src_lengths: [B] long (unused: the mask says it); src_mask: [B, S]
        bool, True = real token -> EncoderOutput(states [B, S, H] zero at padding, summary
        None)."""
        contract.check_shape("src_mask", src_mask, tuple(src.shape))
        x = self.embed(src)  # [B, S, H]
        mask = src_mask[:, None, :]  # [B, 1, S]
        for layer in self.layers:
            x = layer(x, mask)
        states = self.final_norm(x) * src_mask[:, :, None].to(x.dtype)
        return EncoderOutput(states=states, summary=None)


@dataclass
class TransformerState(DecoderState):
    """What the Transformer decoder needs to go on, for B rows.

    memory_keys, memory_values: per layer [B, h, S, dk], the encoder states projected once for
    cross-attention; src_mask: [B, S] bool, True = real token; self_keys, self_values: per layer
    [B, h, t, dk], the self-attention keys and values of the t target positions so far;
    position: t, the position of the next target token (the length of the cache, so it needs
    no tensor of its own).
    """

    memory_keys: tuple[torch.Tensor, ...]
    memory_values: tuple[torch.Tensor, ...]
    src_mask: torch.Tensor
    self_keys: tuple[torch.Tensor, ...]
    self_values: tuple[torch.Tensor, ...]
    position: int = 0

    def tensors(self) -> list[tuple[StateTensor, torch.Tensor]]:
        """memory_keys_<i>, memory_values_<i> (static), src_mask (static), self_keys_<i>,
        self_values_<i> (growing along the time axis 2) for each layer i."""
        n = len(self.self_keys)
        memory = [(StateTensor(f"memory_{kv}_{i}", static=True, source_axis=2),
                   getattr(self, f"memory_{kv}")[i]) for kv in ("keys", "values")
                  for i in range(n)]
        cache = [(StateTensor(f"self_{kv}_{i}", time_axis=2), getattr(self, f"self_{kv}")[i])
                 for kv in ("keys", "values") for i in range(n)]
        return [*memory, (StateTensor("src_mask", static=True, source_axis=1),
                          self.src_mask), *cache]

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> TransformerState:
        n = sum(1 for name in tensors if name.startswith("self_keys_"))
        group = {f: tuple(tensors[f"{f}_{i}"] for i in range(n))
                 for f in ("memory_keys", "memory_values", "self_keys", "self_values")}
        # the next position is the length of the cache (dynamic in an exported graph)
        return cls(**group, src_mask=tensors["src_mask"],
                   position=group["self_keys"][0].size(2))


class DecoderLayer(PreNormLayer):
    """Pre-norm causal self-attention, cross-attention over the encoder, and FFN sublayers."""

    cross = True

    def forward(self, x, cache_k, cache_v, causal, mem_k, mem_v, src_mask):
        """x: [B, T, H] at positions t .. t + T - 1; cache_k, cache_v: [B, h, t, dk]; causal:
        [1, T, t + T] bool; mem_k, mem_v: [B, h, S, dk]; src_mask: [B, 1, S] bool -> x
        [B, T, H], self-attention keys and values [B, h, t + T, dk], cross-attention weights
        [B, h, T, S] float32."""
        h = self.self_norm(x)
        k, v = self.self_attn.project_kv(h)  # [B, h, T, dk]
        k, v = torch.cat([cache_k, k], dim=2), torch.cat([cache_v, v], dim=2)  # [B, h, t+T, dk]
        x = x + self.dropout(self.self_attn(h, k, v, causal)[0])
        out, weights = self.cross_attn(self.cross_norm(x), mem_k, mem_v, src_mask)
        x = x + self.dropout(out)
        return x + self.dropout(self.ff(self.ff_norm(x))), k, v, weights


class TransformerDecoder(Decoder):
    """A stack of pre-norm decoder layers over embedded target tokens, a final LayerNorm and
    the output layer.

    Args:
        vocab_size: target vocabulary size V (wired in code).
        emb_size: embedding size E (wired in code); projected to H if it differs.
        encoder_size: encoder output size (wired in code); projected to H if it differs, so
            an RNN encoder can sit under this decoder.
        tie_embeddings: the output layer shares the target embedding matrix (needs E = H).
        hidden_size: d_model H.
        num_layers: stacked layers.
        num_heads: attention heads, in self- and cross-attention.
        ff_size: inner size of the position-wise FFN.
        dropout: on the embeddings, each sublayer's output and inside the FFN.
        attention_dropout: on the attention weights.
        attention_heads: which cross-attention of the last layer `step` and `forward` return:
            None = the mean over its heads, an int h = head h only.
        pad_id: padding id.
    """

    uses_attention = False
    name = "transformer"

    def __init__(self, *, vocab_size: int, emb_size: int, encoder_size: int,
                 tie_embeddings: bool, hidden_size: int, num_layers: int, num_heads: int,
                 ff_size: int, dropout: float, attention_dropout: float,
                 attention_heads: int | None = None, pad_id: int = 0):
        super().__init__()
        if tie_embeddings and emb_size != hidden_size:
            raise ValueError(
                f"tie_embeddings needs model.emb_size ({emb_size}) to equal "
                f"model.decoder.hidden_size ({hidden_size}) for the Transformer decoder: make "
                "them equal or set model.tie_embeddings=false")
        if attention_heads is not None and not 0 <= attention_heads < num_heads:
            raise ValueError(f"model.decoder.attention_heads={attention_heads}: choose null (the "
                             f"mean over heads) or a head in 0..{num_heads - 1}")
        self.vocab_size, self.hidden_size, self.num_heads = vocab_size, hidden_size, num_heads
        self.attention_heads = attention_heads
        self.embed = TokenEmbedding(vocab_size, emb_size, hidden_size, dropout, pad_id)
        self.memory_proj = (nn.Linear(encoder_size, hidden_size)
                            if encoder_size != hidden_size else None)
        self.layers = nn.ModuleList(
            DecoderLayer(hidden_size, num_heads, ff_size, dropout, attention_dropout)
            for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(hidden_size)
        self.output = nn.Linear(hidden_size, vocab_size, bias=False)
        if tie_embeddings:
            self.output.weight = self.embed.embedding.weight

    def attention_name(self) -> str:
        return "multihead"

    def init_state(self, enc: EncoderOutput, src_mask: torch.Tensor) -> TransformerState:
        """The state before the first target token: every layer's cross-attention keys and
        values of the encoder states, and empty self-attention caches."""
        B, S = enc.states.shape[:2]
        contract.check_shape("src_mask", src_mask, (B, S))
        memory = enc.states if self.memory_proj is None else self.memory_proj(enc.states)
        mem = [layer.cross_attn.project_kv(memory) for layer in self.layers]
        empty = memory.new_zeros(B, self.num_heads, 0, self.hidden_size // self.num_heads)
        return TransformerState(
            memory_keys=tuple(k for k, _ in mem), memory_values=tuple(v for _, v in mem),
            src_mask=src_mask, self_keys=(empty,) * len(self.layers),
            self_values=(empty,) * len(self.layers), position=0)

    def _advance(self, tokens: torch.Tensor, state: TransformerState):
        """tokens: [B, T] long at positions t .. t + T - 1 (t = state.position) -> logits
        [B, T, V], the state after them, attention weights [B, T, S] float32."""
        T, t = tokens.size(1), state.position
        x = self.embed(tokens, start=t)  # [B, T, H]
        causal = (torch.arange(t + T, device=tokens.device)[None, :]
                  <= torch.arange(t, t + T, device=tokens.device)[:, None])[None]  # [1, T, t+T]
        src_mask = state.src_mask[:, None, :]  # [B, 1, S]
        keys, values = [], []
        for i, layer in enumerate(self.layers):
            x, k, v, weights = layer(x, state.self_keys[i], state.self_values[i], causal,
                                     state.memory_keys[i], state.memory_values[i], src_mask)
            keys.append(k)
            values.append(v)
        if self.attention_heads is None:
            attention = weights.mean(dim=1)  # [B, T, S]
        else:
            attention = weights[:, self.attention_heads]  # [B, T, S]
        new = TransformerState(state.memory_keys, state.memory_values, state.src_mask,
                               tuple(keys), tuple(values), t + T)
        return self.output(self.final_norm(x)), new, attention

    def step(self, prev_tokens: torch.Tensor, state: TransformerState):
        """prev_tokens: [B] long -> logits [B, V], the state with this position cached,
        attention weights [B, S] float32. Costs one position: earlier ones come from the cache."""
        logits, state, attention = self._advance(prev_tokens[:, None], state)
        return logits[:, 0], state, attention[:, 0]

    def forward(self, tgt_in: torch.Tensor, state: TransformerState,
                teacher_forcing_ratio: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """tgt_in: [B, T] long (bos + y), all positions at once under a causal mask -> logits
        [B, T, V], attention weights [B, T, S] float32."""
        if teacher_forcing_ratio < 1.0:
            raise ValueError(
                f"teacher_forcing_ratio={teacher_forcing_ratio}: scheduled sampling is not "
                "supported by the Transformer decoder, which reads the whole target in parallel; "
                "use scheduled_sampling=none")
        logits, _, attention = self._advance(tgt_in, state)
        return logits, attention
