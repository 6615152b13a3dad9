"""Attention heatmaps of fixed validation sentences, written as PNG and sent to the loggers."""

from __future__ import annotations

import lightning as L

from seq2seq.atomic import atomic_write_bytes
from seq2seq.callbacks.probe import log_images, probe_sentences, run_dir
from seq2seq.plotting import attention_figure, figure_png


class AttentionHeatmaps(L.Callback):
    """At each validation, plot source subwords (x) against output subwords (y) for the first
    `num_sentences` validation sentences: `<run dir>/<folder>/step<N>_<i>.png`, and every
    active logger (W&B images, TensorBoard images). Rank 0 only.
    """

    def __init__(self, num_sentences: int, folder: str):
        self.num_sentences, self.folder = num_sentences, folder

    def on_validation_epoch_end(self, trainer: L.Trainer, module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.num_sentences <= 0:
            return
        ids, hyps = probe_sentences(trainer, module, self.num_sentences)
        data = trainer.datamodule.datasets["val"]
        out = run_dir(trainer) / self.folder
        paths, captions = [], []
        for i, h in zip(ids, hyps, strict=True):
            src = module.src_tokenizer.pieces(data.src[i].tolist()) + ["</s>"]
            tgt = module.tgt_tokenizer.pieces(h.tokens) + ["</s>"]
            text = module.tgt_tokenizer.decode([h.tokens])[0]
            fig = attention_figure(h.attention.numpy(), src, tgt[: h.attention.size(0)],
                                   title=f"step {trainer.global_step}: {text[:80]}")
            path = out / f"step{trainer.global_step:06d}_{i}.png"
            atomic_write_bytes(path, figure_png(fig))
            paths.append(path)
            captions.append(text)
        log_images(trainer, "val/attention", paths, captions)
