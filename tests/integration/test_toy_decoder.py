"""A decoder written to the contract alone trains, exports and decodes without torch.

`ToyDecoder` and its state live in this file and nowhere else: it is named by config alone
(`model.decoder._target_`), trained a few steps by train(), exported by export.py's code, and
the torch-free runtime translates with it exactly as translate.py does. Its state puts the batch
axis where no built-in decoder does (the source memory is [S, B, H]), so export and the runtime
can only get it right by reading what the state declares.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from seq2seq.export import export
from seq2seq.models.contract import (
    Decoder,
    DecoderState,
    EncoderOutput,
    StateTensor,
    masked_mean,
)
from seq2seq.pipeline import train
from tests.conftest import ROOT, compose_train
from tests.integration.conftest import tiny_overrides

TARGET = f"{__name__}.ToyDecoder"
LINES = ["Ein Hund läuft.", "Zwei Männer spielen Fußball im Park.", "Eine Frau"]


@dataclass
class ToyState(DecoderState):
    """hidden: [B, H]; memory: [S, B, H] encoder states, time-major; mask: [B, S] bool."""

    hidden: torch.Tensor
    memory: torch.Tensor
    mask: torch.Tensor

    def tensors(self) -> list[tuple[StateTensor, torch.Tensor]]:
        return [(StateTensor("hidden"), self.hidden),
                (StateTensor("memory", batch_axis=1, static=True, source_axis=0), self.memory),
                (StateTensor("mask", static=True, source_axis=1), self.mask)]

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> ToyState:
        return cls(tensors["hidden"], tensors["memory"], tensors["mask"])


class ToyDecoder(Decoder):
    """A GRU cell with dot-product attention over the encoder states."""

    name = "toy"

    def __init__(self, *, vocab_size: int, emb_size: int, encoder_size: int,
                 tie_embeddings: bool, pad_id: int, hidden_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, emb_size, padding_idx=pad_id)
        self.start = nn.Linear(encoder_size, hidden_size)
        self.memory = nn.Linear(encoder_size, hidden_size)
        self.cell = nn.GRUCell(emb_size + hidden_size, hidden_size)
        self.output = nn.Linear(2 * hidden_size, vocab_size)

    def init_state(self, enc: EncoderOutput, src_mask: torch.Tensor) -> ToyState:
        hidden = torch.tanh(self.start(masked_mean(enc.states, src_mask)))  # [B, H]
        memory = self.memory(enc.states).transpose(0, 1)  # [S, B, H]
        return ToyState(hidden, memory, src_mask)

    def _attend(self, hidden: torch.Tensor, state: ToyState):
        scores = torch.einsum("bh,sbh->bs", hidden, state.memory)  # [B, S]
        weights = scores.masked_fill(~state.mask, -1e9).softmax(-1)
        return torch.einsum("bs,sbh->bh", weights, state.memory), weights  # [B, H], [B, S]

    def step(self, prev_tokens: torch.Tensor, state: ToyState):
        context, _ = self._attend(state.hidden, state)
        hidden = self.cell(torch.cat([self.embedding(prev_tokens), context], -1), state.hidden)
        context, weights = self._attend(hidden, state)
        logits = self.output(torch.cat([hidden, context], -1))  # [B, V]
        return logits, ToyState(hidden, state.memory, state.mask), weights

    def forward(self, tgt_in: torch.Tensor, state: ToyState, teacher_forcing_ratio: float = 1.0):
        logits, weights = [], []
        for t in range(tgt_in.size(1)):
            step_logits, state, step_weights = self.step(tgt_in[:, t], state)
            logits.append(step_logits)
            weights.append(step_weights)
        return torch.stack(logits, 1), torch.stack(weights, 1)  # [B, T, V], [B, T, S]


@pytest.mark.slow
def test_a_decoder_named_by_config_alone_trains_exports_and_decodes_without_torch(
        tmp_path, data_root):
    run = tmp_path / "run"
    cfg = compose_train([
        *(o for o in tiny_overrides(tmp_path, data_root) if not o.startswith("model")),
        "model=gru_bahdanau", "~model/attention", "model.emb_size=16",
        "model.encoder.hidden_size=16",
        "~model/decoder", f"+model.decoder={{_target_: {TARGET}, hidden_size: 24}}",
        "trainer.max_steps=30", "trainer.max_epochs=-1", "trainer.val_check_interval=30",
        "test=false", f"run_dir={run}"])
    train(cfg)
    ckpt = run / "checkpoints" / "last.ckpt"
    out = export(OmegaConf.create({"ckpt": str(ckpt), "out": str(tmp_path / "exp"),
                                   "opset": 17, "atol": 1e-4}))
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["model"]["decoder"] == "toy"
    assert manifest["state"] == [
        {"name": "hidden", "batch_axis": 0, "static": False, "source_axis": None,
         "time_axis": None},
        {"name": "memory", "batch_axis": 1, "static": True, "source_axis": 0, "time_axis": None},
        {"name": "mask", "batch_axis": 0, "static": True, "source_axis": 1, "time_axis": None}]

    src = tmp_path / "in.de"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    for beam in (1, 3):
        cli = subprocess.run(
            [sys.executable, "translate.py", f"ckpt={ckpt}", f"src={src}", f"beam={beam}"],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert cli.returncode == 0, cli.stderr
        torch_free = subprocess.run(
            [sys.executable, "-c",
             "import sys; sys.modules['torch'] = None\n"
             "from seq2seq.runtime import Translator\n"
             f"print('\\n'.join(Translator({str(out)!r}).translate({LINES!r}, beam={beam})))"],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert torch_free.returncode == 0, torch_free.stderr
        assert torch_free.stdout.splitlines() == cli.stdout.splitlines()
        assert len(cli.stdout.splitlines()) == len(LINES)
    # the exported step is the model's: the same scores as PyTorch (checked at export too)
    assert manifest["max_abs_diff"] <= 1e-4
