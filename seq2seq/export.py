"""export(cfg): a checkpoint in, ONNX graphs and what a torch-free decoder needs out.

    python export.py ckpt=RUN/checkpoints/last.ckpt out=exported/

The export folder holds

    encoder.onnx       src [B, S] int64, src_lengths [B] int64, src_mask [B, S] bool
                       -> every tensor of the decoder's initial state ("init_<name>")
    decoder_step.onnx  prev [B] int64, the state tensors -> log_probs [B, V] float32,
                       attention [B, S] float32, the state tensors that change ("next_<name>")
    src.model, tgt.model   the SentencePiece models stored in the checkpoint
    export.json        format version, ids, sizes, the `decode` defaults and the state layout

The decoder state is the named list of tensors its `tensors()` gives (the contract in
seq2seq/models/contract.py), so that ONNX sees fixed inputs and outputs: small wrapper modules
take and return tuples and rebuild the state inside with `from_tensors`, and the graphs run the
model's own `step()`. Each state tensor says which axis is its batch axis (search reorders rows
along it), its source and time axes, and whether it is `static` (depends only on the source:
the step reads it but does not return it). Export knows no decoder by name: any decoder that
keeps the contract exports.

The written graphs are checked against PyTorch on a few sentences before export.json, the
file that makes the folder usable, is written last.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
from omegaconf import DictConfig
from torch import nn

from seq2seq.atomic import atomic_write_bytes
from seq2seq.checkpoint import CheckpointError, direction, load_module
from seq2seq.data.errors import DataError
from seq2seq.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from seq2seq.models.contract import DecoderState
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.runtime.bundle import FORMAT_VERSION, MANIFEST

log = logging.getLogger(__name__)

ENCODER_INPUTS = ("src", "src_lengths", "src_mask")


def _initial_state(model: Seq2Seq) -> DecoderState:
    """The state the model builds for a one-token sentence."""
    src = torch.tensor([[EOS_ID]])
    with torch.no_grad():
        return model.encode(src, torch.tensor([1]), torch.ones(1, 1, dtype=torch.bool))


def state_layout(model: Seq2Seq) -> list[dict]:
    """The decoder state as named tensors, in graph order: what the state's `tensors()` says
    of each (seq2seq/models/contract.py, StateTensor), as export.json's `state` list holds it."""
    return [spec.as_dict() for spec, _ in _initial_state(model).tensors()]


def flatten(state: DecoderState) -> tuple[torch.Tensor, ...]:
    """The tensors of `state` in graph order."""
    return tuple(t for _, t in state.tensors())


def unflatten(tensors: tuple[torch.Tensor, ...], layout: list[dict],
              state_type: type[DecoderState]) -> DecoderState:
    """The state of `tensors` in `layout` order (inverse of `flatten`)."""
    return state_type.from_tensors(
        {e["name"]: t for e, t in zip(layout, tensors, strict=True)})


class EncoderGraph(nn.Module):
    """src, src_lengths, src_mask -> the decoder's initial state as a tuple (`layout` order)."""

    def __init__(self, model: Seq2Seq, layout: list[dict]):
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, src, src_lengths, src_mask):
        return flatten(self.model.encode(src, src_lengths, src_mask))


class StepGraph(nn.Module):
    """prev [B], *state -> log_probs [B, V] float32, attention [B, S] float32, *the state
    tensors that are not static: one `decoder.step()`."""

    def __init__(self, model: Seq2Seq, layout: list[dict], state_type: type[DecoderState]):
        super().__init__()
        self.decoder, self.layout, self.state_type = model.decoder, layout, state_type

    def forward(self, prev, *state):
        logits, new, attention = self.decoder.step(
            prev, unflatten(state, self.layout, self.state_type))
        changed = [t for e, t in zip(self.layout, flatten(new), strict=True)
                   if not e["static"]]
        return (torch.log_softmax(logits.float(), dim=-1), attention.float(), *changed)


def _dynamic_axes(layout: list[dict], prefix: str = "") -> dict:
    """ONNX dynamic axes of the state tensors: batch B, source length S, cache length T, as
    each tensor's entry names them."""
    axes = {}
    for e in layout:
        d = {e["batch_axis"]: "B"}
        if e["source_axis"] is not None:
            d[e["source_axis"]] = "S"
        if e["time_axis"] is not None:
            d[e["time_axis"]] = "T"
        axes[prefix + e["name"]] = d
    return axes


def _sample(model: Seq2Seq, vocab: int, lengths: list[int]):
    """A padded batch of random source ids with `lengths` (eos last), and its state."""
    S = max(lengths)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(EOS_ID + 1, max(vocab, EOS_ID + 2), (len(lengths), S), generator=g)
    lens = torch.tensor(lengths)
    mask = torch.arange(S)[None, :] < lens[:, None]
    src = src.masked_fill(~mask, PAD_ID)
    src[torch.arange(len(lengths)), lens - 1] = EOS_ID
    return src, lens, mask


def _onnx_bytes(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str],
                axes: dict, opset: int) -> bytes:
    buf = io.BytesIO()
    modes = {m: m.training for m in module.modules()}  # the exporter leaves them in training
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes on PackPadded etc.
        torch.onnx.export(module, args, buf, dynamo=False, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True)
    for m, training in modes.items():
        m.train(training)
    return buf.getvalue()


def share_transposed(graph: bytes) -> bytes:
    """`graph` with each initializer that is the transpose of another (the exporter folds
    W.t() of a tied output layer into a second copy of the embedding matrix) replaced by a
    Transpose node over the other: the file holds the matrix once, and onnxruntime folds the
    Transpose back into a constant when it loads the session, so decoding costs the same."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(graph)
    inits = list(model.graph.initializer)
    by_shape: dict[tuple, list] = {}
    for t in inits:
        if len(t.dims) == 2:
            by_shape.setdefault(tuple(t.dims), []).append(t)
    arrays: dict[str, np.ndarray] = {}

    def array(t) -> np.ndarray:
        if t.name not in arrays:
            arrays[t.name] = numpy_helper.to_array(t)
        return arrays[t.name]

    replaced = []
    for t in inits:
        if len(t.dims) != 2 or t.dims[0] == t.dims[1] or t.name in replaced:
            continue
        for w in by_shape.get((t.dims[1], t.dims[0]), []):
            if w.name not in replaced and np.array_equal(array(w).T, array(t)):
                model.graph.node.insert(0, helper.make_node(
                    "Transpose", [w.name], [t.name], perm=[1, 0], name=f"{t.name}/shared"))
                replaced.append(t.name)
                break
    if not replaced:
        return graph
    keep = [t for t in inits if t.name not in replaced]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return model.SerializeToString()


def export_graphs(model: Seq2Seq, src_vocab: int, opset: int = 17) -> tuple[bytes, bytes, list]:
    """(encoder.onnx bytes, decoder_step.onnx bytes, state layout) of an eval-mode model."""
    model = model.eval()
    layout = state_layout(model)
    names = [e["name"] for e in layout]
    src, lens, mask = _sample(model, src_vocab, [5, 3, 4])
    enc_axes = {"src": {0: "B", 1: "S"}, "src_lengths": {0: "B"}, "src_mask": {0: "B", 1: "S"},
                **_dynamic_axes(layout, prefix="init_")}
    encoder = _onnx_bytes(EncoderGraph(model, layout), (src, lens, mask), list(ENCODER_INPUTS),
                          [f"init_{n}" for n in names], enc_axes, opset)
    # trace the step with a non-empty cache, so its length is not taken for a constant
    with torch.no_grad():
        state = model.encode(src, lens, mask)
        for tok in (BOS_ID, EOS_ID + 1):
            _, state, _ = model.decoder.step(torch.full((3,), tok), state)
    changed = [e["name"] for e in layout if not e["static"]]
    step_axes = {"prev": {0: "B"}, "log_probs": {0: "B"}, "attention": {0: "B", 1: "S"},
                 **_dynamic_axes(layout), **_dynamic_axes(
                     [e for e in layout if not e["static"]], prefix="next_")}
    step = _onnx_bytes(StepGraph(model, layout, type(state)),
                       (torch.full((3,), BOS_ID), *flatten(state)),
                       ["prev", *names], ["log_probs", "attention",
                                          *(f"next_{n}" for n in changed)], step_axes, opset)
    return share_transposed(encoder), share_transposed(step), layout


def check_graphs(model: Seq2Seq, encoder: bytes, step: bytes, layout: list[dict],
                 src_vocab: int, steps: int = 4, atol: float = 1e-4) -> float:
    """Run the graphs with onnxruntime beside PyTorch on random sentences of other sizes than
    the traced ones, `steps` decoder steps; raise CheckpointError when an output differs by more
    than atol. Returns the largest difference."""
    import onnxruntime as ort

    from seq2seq.runtime.graphs import feed

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    enc = ort.InferenceSession(encoder, opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(step, opts, providers=["CPUExecutionProvider"])
    src, lens, mask = _sample(model, src_vocab, [7, 2, 6, 7, 1])
    worst = 0.0

    def compare(what, got, want):
        nonlocal worst
        diff = float(np.abs(got - want.float().numpy()).max()) if want.numel() else 0.0
        worst = max(worst, diff)
        if not diff <= atol:
            raise CheckpointError(f"exported {what} differs from PyTorch by {diff:.3g} "
                                  f"(> {atol}): this model's graph does not export faithfully")

    with torch.no_grad():
        ref = model.encode(src, lens, mask)
        inputs = {"src": src.numpy(), "src_lengths": lens.numpy(), "src_mask": mask.numpy()}
        state = dict(zip([e["name"] for e in layout], enc.run(None, feed(enc, inputs)),
                         strict=True))
        for e, t in zip(layout, flatten(ref), strict=True):
            compare(f"initial {e['name']}", state[e["name"]].astype(np.float32), t)
        prev = torch.full((5,), BOS_ID)
        for t in range(steps):
            logits, ref, att = model.decoder.step(prev, ref)
            out = dec.run(None, feed(dec, {"prev": prev.numpy(), **state}))
            compare(f"log_probs at step {t}", out[0], torch.log_softmax(logits.float(), -1))
            compare(f"attention at step {t}", out[1], att)
            changed = [e["name"] for e in layout if not e["static"]]
            state.update(zip(changed, out[2:], strict=True))
            for e, want in zip(layout, flatten(ref), strict=True):
                compare(f"{e['name']} at step {t}", state[e["name"]].astype(np.float32), want)
            prev = logits.argmax(-1)
    return worst


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_export(out: str | Path, model: Seq2Seq, src_spm: bytes, tgt_spm: bytes,
                 decode: dict, *, languages: tuple[str, str] | None = None,
                 max_len: int | None = None, checkpoint: str | None = None, opset: int = 17,
                 atol: float = 1e-4) -> Path:
    """Export `model` with its SentencePiece models (serialized protos) and `decode` defaults
    into the folder `out`: the graphs are checked against PyTorch first, export.json is written
    last. Returns the folder."""
    model = model.eval()
    src_vocab = spm.SentencePieceProcessor(model_proto=src_spm).get_piece_size()
    tgt_vocab = spm.SentencePieceProcessor(model_proto=tgt_spm).get_piece_size()
    encoder, step, layout = export_graphs(model, src_vocab, opset)
    worst = check_graphs(model, encoder, step, layout, src_vocab, atol=atol)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # a half-rewritten folder must not look complete
    files = {"encoder": ("encoder.onnx", encoder), "decoder_step": ("decoder_step.onnx", step),
             "src_spm": ("src.model", bytes(src_spm)), "tgt_spm": ("tgt.model", bytes(tgt_spm))}
    for name, data in files.values():
        atomic_write_bytes(out / name, data)
    dec = model.decoder
    manifest = {
        "format_version": FORMAT_VERSION,
        "checkpoint": checkpoint,
        "languages": {"src": languages[0], "tgt": languages[1]} if languages else None,
        "model": {"encoder": model.encoder.describe(), "decoder": dec.describe(),
                  "attention": dec.attention_name(),
                  "parameters": sum(p.numel() for p in model.parameters())},
        "ids": {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
        "vocab_size": {"src": src_vocab, "tgt": tgt_vocab},
        "max_len": max_len,
        "decode": dict(decode),
        "state": layout,
        "files": {key: {"path": name, "bytes": len(data), "sha256": _sha256(data)}
                  for key, (name, data) in files.items()},
        "opset": opset,
        "max_abs_diff": worst,
    }
    atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return out


def export(cfg: DictConfig) -> Path:
    """Export cfg.ckpt into the folder cfg.out (see the module docstring); returns the folder."""
    if not cfg.get("ckpt"):
        raise DataError("ckpt=PATH is required: the checkpoint to export "
                        "(e.g. RUN/checkpoints/last.ckpt)")
    if not cfg.get("out"):
        raise DataError("out=DIR is required: the folder to write the exported model to")
    module = load_module(cfg.ckpt)
    if module.src_tokenizer is None:
        raise CheckpointError(f"{cfg.ckpt}: holds no SentencePiece models, so an export could "
                              "not tokenize; re-save it from a run of train.py")
    out = write_export(cfg.out, module.model, module.src_tokenizer.model_proto,
                       module.tgt_tokenizer.model_proto, module.config["decode"],
                       languages=direction(module),
                       max_len=(module.config.get("data") or {}).get("max_len"),
                       checkpoint=str(cfg.ckpt), opset=cfg.opset, atol=cfg.atol)
    worst = json.loads((out / MANIFEST).read_text())["max_abs_diff"]
    print(f"exported {cfg.ckpt} to {out}/ (largest difference to PyTorch {worst:.2g})",
          file=sys.stderr)
    return out
