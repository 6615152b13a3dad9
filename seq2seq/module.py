"""The LightningModule: teacher forcing with scheduled sampling, label smoothing, Adam and
LR schedules, validation and test BLEU from greedy or beam search (`decode` config).

It receives plain config and builds its model, so a checkpoint rebuilds itself; the
SentencePiece models travel inside the checkpoint as byte tensors.
"""

from __future__ import annotations

import logging
import time

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.plugins.precision import MixedPrecision

from seq2seq.clock import RunClock
from seq2seq.corpus_stats import CorpusStats
from seq2seq.data.batch import Batch
from seq2seq.data.tokenizer import PAD_ID, UNK_ID, SubwordTokenizer
from seq2seq.decoding.hypothesis import Hypothesis
from seq2seq.decoding.options import DecodeOptions
from seq2seq.decoding.search import decode
from seq2seq.loss import label_smoothed_nll
from seq2seq.lr_schedule import WarmupSchedule, epoch_limit_note
from seq2seq.metrics import Scores, corpus_scores, metric_prefixes
from seq2seq.models.seq2seq import build_seq2seq
from seq2seq.scheduled_sampling import ScheduledSampling

log = logging.getLogger(__name__)

EVAL_LOSS_POSITIONS = 1024  # target positions per slice of an evaluation batch's loss

CONFIG_KEYS = ("model", "optim", "loss", "scheduled_sampling", "decode", "monitor", "seed")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (with loss.on_nonfinite=stop)."""


class Seq2SeqModule(L.LightningModule):
    """Args:
        config: plain dict with the sections of conf/train.yaml it uses, every key given:
            `model` (see build_seq2seq), `optim`, `loss`, `scheduled_sampling`, `decode`,
            `monitor` ({metric, mode}) and the run's `seed`; optionally `data` (what the model
            was trained on: max_len, src and tgt) and `provenance` (code and library versions).
        src_vocab_size, tgt_vocab_size: vocabulary sizes (from the tokenizers).
    """

    def __init__(self, config: dict, src_vocab_size: int, tgt_vocab_size: int):
        super().__init__()
        missing = [k for k in CONFIG_KEYS if k not in config]
        if missing:
            raise ValueError(f"the module config has no `{missing[0]}` section (build it with "
                             "seq2seq.pipeline.module_config from the train config)")
        self.save_hyperparameters()
        self.config = config
        self.model = build_seq2seq(self.config["model"], src_vocab_size, tgt_vocab_size, PAD_ID)
        self.teacher_forcing = ScheduledSampling(**self.config["scheduled_sampling"])
        self.src_tokenizer: SubwordTokenizer | None = None
        self.tgt_tokenizer: SubwordTokenizer | None = None
        self._outputs: dict[str, dict[int, str]] = {}
        self.corpus_stats = torch.nn.ModuleDict(
            {stage: CorpusStats(unk_id=UNK_ID) for stage in ("val", "test")})
        self._last_time: float | None = None
        self.train_tokens, self.train_seconds = 0, 0.0  # steady-state throughput, this process
        # seconds of training across resumes: `val/minutes`, and the schedule fitted to
        # trainer.max_time (seq2seq/callbacks/schedule_to_time.py) reads it too
        self.clock = RunClock()
        # of the last test, by test set name in the datamodule's order (the headline set first)
        self.test_scores: dict[str, Scores] = {}
        self.test_outputs: dict[str, dict[int, str]] = {}

    # -- tokenizers travel with the checkpoint -----------------------------------------------

    def set_tokenizers(self, src: SubwordTokenizer, tgt: SubwordTokenizer) -> None:
        self.src_tokenizer, self.tgt_tokenizer = src, tgt

    def on_train_start(self) -> None:
        self.clock.start()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.clock.save(checkpoint)
        if self.src_tokenizer is not None:
            checkpoint["tokenizers"] = {
                side: torch.frombuffer(bytearray(tok.model_proto), dtype=torch.uint8)
                for side, tok in (("src", self.src_tokenizer), ("tgt", self.tgt_tokenizer))}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.clock.restore(checkpoint)
        toks = checkpoint.get("tokenizers")
        if toks:
            src = SubwordTokenizer(toks["src"].numpy().tobytes())
            same = torch.equal(toks["src"], toks["tgt"])
            self.set_tokenizers(src, src if same else SubwordTokenizer(toks["tgt"].numpy().tobytes()))

    # -- training -----------------------------------------------------------------------------

    def _loss(self, batch: Batch, teacher_forcing_ratio: float = 1.0):
        logits, _ = self.model(batch.src, batch.src_lengths, batch.src_mask, batch.tgt_in,
                               teacher_forcing_ratio)
        return label_smoothed_nll(logits, batch.tgt_out,
                                  self.config["loss"]["label_smoothing"], PAD_ID)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        ratio = self.teacher_forcing(self.global_step)
        loss_sum, nll_sum, ntok = self._loss(batch, ratio)
        loss = loss_sum / ntok
        if self._nonfinite(loss, batch):
            return None  # skipped: no backward, no optimizer step (on every rank)
        now = time.perf_counter()
        if self._last_time is not None:
            self.train_tokens += ntok
            self.train_seconds += now - self._last_time
            self.log("train/tokens_per_s", ntok / max(now - self._last_time, 1e-9),
                     prog_bar=True)
        self._last_time = now
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/ppl", torch.exp(nll_sum / ntok))
        self.log("train/teacher_forcing", ratio)
        return loss

    def _nonfinite(self, loss: torch.Tensor, batch: Batch) -> bool:
        """Whether to skip this batch because some rank's loss is NaN or infinite; raises
        NonFiniteLossError instead when loss.on_nonfinite is "stop"."""
        bad = not bool(torch.isfinite(loss.detach()))
        if self._trainer is not None:
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            return False
        where = f"at step {self.global_step} (epoch {self.current_epoch})"
        if self.config["loss"]["on_nonfinite"] == "skip":
            log.warning("non-finite loss %s: batch of %d sentences skipped", where, len(batch.ids))
            return True
        callbacks = self.trainer.checkpoint_callbacks if self._trainer else []
        saved = [c.best_model_path for c in callbacks
                 if getattr(c, "filename", None) == "last" and c.best_model_path]
        last = f"; the last good checkpoint is {saved[0]} (resume: ckpt_path=last)" if saved else ""
        raise NonFiniteLossError(
            f"the training loss is {float(loss):.4g} {where}{last}. Lower optim.lr, check "
            "trainer.gradient_clip_val, or set loss.on_nonfinite=skip to skip such batches")

    def on_before_optimizer_step(self, optimizer) -> None:
        # the norm before clipping (Lightning clips after this hook)
        norms = [p.grad.detach().norm() for p in self.parameters() if p.grad is not None]
        if norms:
            self.log("train/grad_norm", torch.stack(norms).norm())

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        # Dropout and scheduled sampling draw from a stream seeded at every batch from (seed,
        # epoch, rank, batch index), so a run resumed from any checkpoint, mid-epoch too, repeats
        # the uninterrupted run, whatever drew from the global generator before (DataLoader
        # iterators, validation). About 0.1 ms a batch.
        torch.manual_seed(int(np.random.SeedSequence(
            [self.config["seed"], self.current_epoch, self.global_rank, batch_idx]
        ).generate_state(1, np.uint64)[0]))

    def on_train_epoch_start(self) -> None:
        # Lightning calls set_epoch only on `.sampler`, never on a batch sampler. Under
        # trainer.overfit_batches the epoch stays 0, so the same batches come back every epoch.
        sampler = getattr(self.trainer.train_dataloader, "batch_sampler", None)
        if hasattr(sampler, "set_epoch") and not self.trainer.overfit_batches:
            sampler.set_epoch(self.current_epoch)
        self._last_time = None

    def _fused_adam(self, fused: bool | None) -> bool | None:
        """`optim.fused`: None (auto) fuses Adam's update into one kernel (faster than the
        default on CPU: experiments/README.md) unless Lightning's autocast plugin runs the step,
        which cannot clip gradients for an optimizer that unscales them itself (bf16-mixed on a
        CPU, CastWeightsPrecision, clips float32 gradients as usual)."""
        if fused is not None:
            return bool(fused)
        plugin = self.trainer.precision_plugin if self._trainer else None
        return None if isinstance(plugin, MixedPrecision) else True

    def configure_optimizers(self):
        o = self.config["optim"]
        opt = torch.optim.Adam(self.parameters(), lr=o["lr"], betas=tuple(o["betas"]),
                               eps=o["eps"], weight_decay=o["weight_decay"],
                               fused=self._fused_adam(o["fused"]))
        if o["schedule"] == "plateau":
            monitor = self.config["monitor"]
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode=monitor["mode"], factor=o["plateau_factor"],
                patience=o["plateau_patience"])
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched,
                                                       "monitor": monitor["metric"],
                                                       "interval": "epoch"}}
        total = int(self.trainer.estimated_stepping_batches) if self._trainer else 0
        if self._trainer and (note := epoch_limit_note(self.trainer.max_steps, total,
                                                       self.trainer.max_epochs)):
            log.warning(note)
        fn = WarmupSchedule(o["schedule"], o["warmup_steps"], total, o["min_ratio"])
        sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- evaluation ---------------------------------------------------------------------------

    def search(self, batch: Batch, opts: DecodeOptions | None = None) -> list[list[Hypothesis]]:
        """n-best lists of a batch; options default to the config's `decode` section."""
        opts = opts or DecodeOptions.from_dict(self.config["decode"])
        return decode(self.model, batch.src, batch.src_lengths, batch.src_mask, opts)

    def _eval_loss(self, batch: Batch):
        """`_loss` of an evaluation batch, summed over slices of at most EVAL_LOSS_POSITIONS
        target positions: evaluation batches are large (6,000 tokens by default), and their
        [positions, V] logits and log-probabilities at once (about 190 MB each for an 8,000-word
        vocabulary) would set the peak memory of a whole training run."""
        rows = max(1, EVAL_LOSS_POSITIONS // batch.tgt_in.size(1))
        loss_sum = nll_sum = 0.0
        ntok = 0
        for start in range(0, len(batch), rows):
            part = self._loss(batch.rows(start, start + rows))
            loss_sum, nll_sum, ntok = loss_sum + part[0], nll_sum + part[1], ntok + part[2]
        return loss_sum, nll_sum, ntok

    def _eval_step(self, batch: Batch, stage: str) -> None:
        # sums, not per-batch means: the figures are ratios of corpus sums (logged in _score)
        loss_sum, nll_sum, ntok = self._eval_loss(batch)
        best = []
        decoded = self._decoded_rows(batch, stage)
        if self.tgt_tokenizer is not None and len(decoded):
            best = [h[0] for h in self.search(decoded)]
            texts = self.tgt_tokenizer.decode([h.tokens for h in best])
            self._outputs.setdefault(stage, {}).update(
                zip(decoded.ids.tolist(), texts, strict=True))
        self.corpus_stats[stage].update(loss_sum, nll_sum, ntok, best)

    def _decoded_rows(self, batch: Batch, stage: str) -> Batch:
        """The pairs of `batch` to decode: those of the datamodule's `decoded_mask` (a fixed
        subset of the validation set, data.val_max_sentences), else all."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        mask = getattr(datamodule, "decoded_mask", lambda split: None)(stage)
        if mask is None:
            return batch
        keep = mask[batch.ids.cpu()].nonzero().squeeze(1)  # [N] rows of the batch
        return batch if len(keep) == len(batch) else batch.select(keep.to(batch.ids.device))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def _test_sets(self) -> list[tuple[str, str]]:
        """(name, split) of each test loader, in order: the datamodule's `test_sets` (one set,
        "test", if it names none); the first set's split is "test"."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        names = list(getattr(datamodule, "test_sets", None) or ["test"])
        return [(name, "test" if i == 0 else name) for i, name in enumerate(names)]

    def on_test_epoch_start(self) -> None:
        for _, split in self._test_sets()[1:]:
            if split not in self.corpus_stats:
                self.corpus_stats[split] = CorpusStats(unk_id=UNK_ID).to(self.device)

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, self._test_sets()[dataloader_idx][1])

    def _gather(self, stage: str) -> dict[int, str]:
        mine = self._outputs.pop(stage, {})
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, mine)
            mine = {k: v for p in parts for k, v in p.items()}
        return mine

    def _log_figures(self, prefixes: tuple[str, ...], **figures: float) -> None:
        # every rank logs: the figures are identical on all ranks (see _score); no dataloader
        # index is appended, the prefix names the test set
        for prefix in prefixes:
            for name, value in figures.items():
                self.log(f"{prefix}/{name}", value, rank_zero_only=False,
                         add_dataloader_idx=False)

    def _score(self, split: str, prefixes: tuple[str, ...]):
        """Score the outputs of `split`, logged under each of `prefixes`; returns (Scores or
        None, outputs by example id)."""
        # every rank computes: CorpusStats sums its states over ranks, so the figures are the
        # corpus ones and identical on all ranks (no sync_dist, which would average them again)
        stats = {k: float(v) for k, v in self.corpus_stats[split].compute().items()}
        self.corpus_stats[split].reset()
        self._log_figures(prefixes, loss=stats["loss"], ppl=stats["ppl"])
        outputs = self._gather(split)
        if not outputs or self.trainer.datamodule is None:
            return None, outputs
        refs = self.trainer.datamodule.references(split)
        ids = sorted(outputs)
        scores = corpus_scores([outputs[i] for i in ids], [refs[i] for i in ids])
        self._log_figures(prefixes, bleu=scores.bleu, chrf=scores.chrf,
                          len_ratio=scores.length_ratio, unk_share=stats["unk_share"],
                          attention_entropy=stats["attention_entropy"])
        return scores, outputs

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._outputs.pop("val", None)
            self.corpus_stats["val"].reset()  # the first validation must not count these batches
            return
        self._score("val", ("val",))
        # the run's clock at this validation, for BLEU at a fixed budget (report.py); ranks
        # differ by milliseconds: the slowest one's
        self.log("val/minutes", self.clock.elapsed() / 60, sync_dist=True, reduce_fx="max")

    def on_test_epoch_end(self) -> None:
        self.test_scores, self.test_outputs = {}, {}
        for i, (name, split) in enumerate(self._test_sets()):
            scores, self.test_outputs[name] = self._score(split, metric_prefixes(i, name))
            if scores is not None:
                self.test_scores[name] = scores
