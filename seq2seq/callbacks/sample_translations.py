"""Sample translations (source / reference / hypothesis) at each validation."""

from __future__ import annotations

import logging

import lightning as L

from seq2seq.callbacks.probe import log_table, probe_sentences

log = logging.getLogger(__name__)


class SampleTranslations(L.Callback):
    """Print and log (W&B table, TensorBoard text) the translations of the first
    `num_sentences` validation sentences. Rank 0 only."""

    def __init__(self, num_sentences: int):
        self.num_sentences = num_sentences

    def on_validation_epoch_end(self, trainer: L.Trainer, module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self.num_sentences <= 0:
            return
        ids, hyps = probe_sentences(trainer, module, self.num_sentences)
        dm = trainer.datamodule
        srcs, refs = dm.sources("val"), dm.references("val")
        texts = module.tgt_tokenizer.decode([h.tokens for h in hyps])
        rows = [[srcs[i], refs[i], t] for i, t in zip(ids, texts, strict=True)]
        lines = [f"step {trainer.global_step}, validation samples:"]
        lines += [f"  src: {s}\n  ref: {r}\n  hyp: {h}" for s, r, h in rows]
        log.info("\n".join(lines))
        log_table(trainer, "val/samples", ["source", "reference", "hypothesis"], rows)
