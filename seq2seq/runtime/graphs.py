"""The exported encoder and decoder step as functions of NumPy arrays, in the contract search
uses: encode(src, lengths, mask) -> state; step(prev [B], state) -> log-probs [B, V], state,
attention [B, S]."""

from __future__ import annotations

import numpy as np

from seq2seq.runtime.search import State


def feed(session, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs `session` takes, picked from `values` (the exporter drops inputs a graph
    does not read, e.g. the mask of an encoder that only needs the lengths)."""
    return {i.name: values[i.name] for i in session.get_inputs()}


class Graphs:
    """encoder, step: onnxruntime sessions of encoder.onnx and decoder_step.onnx; layout: the
    `state` list of export.json (name, batch_axis, static, time_axis per state tensor)."""

    def __init__(self, encoder, step, layout: list[dict]):
        self.encoder, self.step_session, self.layout = encoder, step, layout
        self.names = [e["name"] for e in layout]
        self.changed = [e["name"] for e in layout if not e["static"]]  # what step returns

    def encode(self, src: np.ndarray, src_lengths: np.ndarray, src_mask: np.ndarray) -> State:
        """src: [B, S] int64 (eos last, pad 0); src_lengths: [B] int64; src_mask: [B, S] bool
        -> the decoder's initial state."""
        out = self.encoder.run(None, feed(self.encoder, {
            "src": src, "src_lengths": src_lengths, "src_mask": src_mask}))
        return State(dict(zip(self.names, out, strict=True)), self.layout)

    def step(self, prev: np.ndarray, state: State):
        """prev: [B] int64 -> log-probs [B, V] float32, the next state, attention [B, S]."""
        out = self.step_session.run(None, feed(self.step_session,
                                               {"prev": prev, **state.arrays}))
        arrays = dict(state.arrays)
        arrays.update(zip(self.changed, out[2:], strict=True))
        return out[0], State(arrays, self.layout), out[1]
