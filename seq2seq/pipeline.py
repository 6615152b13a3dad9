"""train(cfg): build data, model, callbacks, loggers and Trainer from a Hydra config; fit; test."""

from __future__ import annotations

import logging
import os
import platform
import re
import time
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf

from seq2seq.atomic import atomic_write_bytes
from seq2seq.callbacks.schedule_to_time import ScheduleToTime
from seq2seq.checkpoint import StreamingCheckpointIO
from seq2seq.data.errors import DataError
from seq2seq.decoding.options import DecodeOptions
from seq2seq.lr_schedule import WarmupSchedule
from seq2seq.metrics import metric_prefixes, test_set_metrics
from seq2seq.module import CONFIG_KEYS, Seq2SeqModule
from seq2seq.precision import (
    CPU_BF16,
    CastWeightsPrecision,
    check_precision,
    cpu_features,
    describe_precision,
    on_gpu,
    resolve_precision,
)
from seq2seq.provenance import describe, provenance
from seq2seq.record import FILENAME, RunConfig, RunRecord
from seq2seq.translation import beam_test_scores

log = logging.getLogger(__name__)


def _sections(cfg: DictConfig) -> dict:
    """The LightningModule's sections of the train config (CONFIG_KEYS), as plain data."""
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k])
            else cfg[k] for k in CONFIG_KEYS}


def module_config(cfg: DictConfig, datamodule=None) -> dict:
    """The plain-data part of the config the LightningModule (and its checkpoints) keep: its
    sections of the train config, what it is trained on (the datamodule's `description`) and
    what produced it (seq2seq/provenance.py)."""
    out = _sections(cfg)
    if datamodule is not None:
        out["data"] = datamodule.description()
    return {**out, "provenance": provenance()}


def build_datamodule(cfg: DictConfig):
    """The datamodule of cfg.data; a bad data option raises the DataError that names it (Hydra
    would wrap it in an InstantiationException)."""
    try:
        return instantiate(cfg.data)
    except InstantiationException as e:
        if isinstance(e.__cause__, DataError):
            raise e.__cause__ from None
        raise


def build(cfg: DictConfig):
    """The datamodule (data fetched, SentencePiece models trained) and the LightningModule of a
    train config: what `train` fits, and what experiments/ scripts measure."""
    if cfg.model.get("share_all_embeddings", False) and not cfg.data.get("joint_vocab", False):
        raise DataError("model.share_all_embeddings=true ties source and target embeddings, so "
                        "both languages need one vocabulary: set data.joint_vocab=true")
    L.seed_everything(cfg.seed, workers=True)  # the initial weights depend on the seed only
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    src_tok, tgt_tok = datamodule.build_tokenizers()
    module = Seq2SeqModule(module_config(cfg, datamodule), len(src_tok), len(tgt_tok))
    module.set_tokenizers(src_tok, tgt_tok)
    return datamodule, module


def build_trainer(cfg: DictConfig, callbacks: list, loggers: list, module=None,
                  **overrides) -> L.Trainer:
    """The Trainer of a train config (`overrides` replace cfg.trainer keys), with the batch
    sampler left to the datamodule and checkpoints written atomically. trainer.precision=auto
    is resolved (for `module`, see precision.resolve_precision), checked against `module` and
    logged; bf16 on a CPU runs through CastWeightsPrecision."""
    args = {**OmegaConf.to_container(cfg.trainer, resolve=True), **overrides}
    requested = args.pop("precision")
    precision = resolve_precision(requested, args["accelerator"], module)
    if module is not None:
        check_precision(precision, args["accelerator"], module)
        log.info("%s", describe_precision(requested, precision, args["accelerator"]))
    plugins = [StreamingCheckpointIO()]
    if precision in CPU_BF16 and not on_gpu(args["accelerator"]):
        plugins.append(CastWeightsPrecision())
    else:
        args["precision"] = precision
    return L.Trainer(**args, callbacks=callbacks, logger=loggers or False, plugins=plugins,
                     default_root_dir=str(cfg.run_dir), use_distributed_sampler=False)


def _instantiate_all(group: DictConfig | None) -> list:
    """The objects of a config group (callbacks, loggers), null entries left out; a bad option
    raises the DataError that names it (Hydra would wrap it in an InstantiationException)."""
    if not group:
        return []
    try:
        return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]
    except InstantiationException as e:
        if isinstance(e.__cause__, DataError):
            raise e.__cause__ from None
        raise


def fit_steps(cfg: DictConfig, steps: int, callbacks: list | None = None, **trainer_args):
    """`steps` optimizer updates of the configured model, by the module's own training step,
    with no validation, checkpoint or logger: what experiments/ scripts time and compare.
    Returns (datamodule, module, trainer)."""
    datamodule, module = build(cfg)
    args = {"max_steps": steps, "max_epochs": -1, "max_time": None, "limit_val_batches": 0,
            "num_sanity_val_steps": 0, "enable_checkpointing": False,
            "enable_model_summary": False, "enable_progress_bar": False, **trainer_args}
    trainer = build_trainer(cfg, callbacks or [], [], module, **args)
    trainer.fit(module, datamodule=datamodule)
    if trainer.global_step != steps:
        raise RuntimeError(f"training stopped after {trainer.global_step} of {steps} updates")
    return datamodule, module, trainer


# renamed config keys, kept in conf/ as null so that Hydra accepts them: a run that sets one
# stops at once with its new spelling
RENAMED = {
    "optim.fit_to_time": "callbacks.schedule_to_time: callbacks=schedule_to_time turns the "
                         "fitted schedule on (the time-limited recipes have it), "
                         "callbacks.schedule_to_time=null turns it off",
}


def _refuse_renamed(cfg: DictConfig) -> None:
    for old, new in RENAMED.items():
        if OmegaConf.select(cfg, old) is not None:
            raise DataError(f"{old} is now {new}")


# Adam's words for its options, and the optim keys they are
_ADAM = {"learning rate": "lr", "epsilon": "eps", "beta parameter": "betas",
         "weight_decay": "weight_decay"}


def _check_training_options(config: dict) -> None:
    """The optimizer, schedule and loss options of a module config (DataError naming one)."""
    o = config["optim"]
    try:
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=o["lr"],
                         betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"])
        if o["schedule"] != "plateau":
            WarmupSchedule(o["schedule"], o["warmup_steps"], 1, o["min_ratio"])
    except (ValueError, TypeError) as e:
        key = next((k for words, k in _ADAM.items() if words in str(e)), None)
        raise DataError(f"optim.{key}={o[key]}: {e}" if key else str(e)) from None
    DecodeOptions.from_dict(config["decode"])
    smoothing = config["loss"]["label_smoothing"]
    if not (isinstance(smoothing, (int, float)) and 0 <= smoothing < 1):
        raise DataError(f"loss.label_smoothing={smoothing!r}: give a probability from 0 to "
                        "below 1")


def check_config(cfg: DictConfig) -> None:
    """Every option of a train config checked before any work, so that a mistake costs a second
    and writes nothing: the data options (the datamodule is built, no file is read), the model
    (built on the meta device: no memory, no weights), the module's sections, the callbacks, the
    precision and the Trainer's own options. Raises DataError (PrecisionError) naming the
    option."""
    _refuse_renamed(cfg)
    for key in ("run_dir", "data.cache_dir"):
        path = OmegaConf.select(cfg, key)
        if path is not None and Path(str(path)).exists() and not Path(str(path)).is_dir():
            raise DataError(f"{key}={path}: a file is there; name a folder, or move the file")
    build_datamodule(cfg)
    vocab = int(cfg.data.get("vocab_size") or 8000)  # the sizes are the tokenizers' later
    config = _sections(cfg)
    try:
        with torch.device("meta"):
            module = Seq2SeqModule(config, vocab, vocab)
    except (ValueError, TypeError) as e:
        raise DataError(str(e)) from None
    _check_training_options(config)
    max_time = cfg.trainer.get("max_time")
    if isinstance(max_time, str) and not re.fullmatch(r"\d+:\d\d:\d\d:\d\d", max_time):
        raise DataError(f"trainer.max_time={max_time}: give DD:HH:MM:SS, e.g. 00:00:20:00")
    callbacks = _instantiate_all(cfg.get("callbacks"))
    accelerator = cfg.trainer.accelerator
    check_precision(resolve_precision(cfg.trainer.precision, accelerator, module), accelerator,
                    module)
    quiet = logging.getLogger("lightning.pytorch")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # its device lines come with the run
    try:
        build_trainer(cfg, callbacks, [])
    except (ValueError, TypeError, MisconfigurationException) as e:
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        named = [f"trainer.{k}={v}" for k, v in cfg.trainer.items()
                 if re.search(rf"\b{re.escape(k)}\b", text)]
        raise DataError(f"{', '.join(named) or 'trainer'}: {text}") from None
    finally:
        quiet.setLevel(level)


def train(cfg: DictConfig) -> dict:
    """Fit a model as configured, then score it on the test split. Returns the final metrics."""
    check_config(cfg)
    start = time.perf_counter()
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    datamodule, module = build(cfg)
    n_params = sum(p.numel() for p in module.parameters())
    data = module.config["data"]
    log.info("model: %s parameters, %s -> %s", f"{n_params:,}", data["src"], data["tgt"])
    log.info("%s", describe(module.config["provenance"]))

    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer = build_trainer(cfg, callbacks, loggers, module)
    status = "failed"
    try:
        for lg in loggers:
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        best_score = getattr(trainer.checkpoint_callback, "best_model_score", None)
        if best_score is not None and cfg.monitor.metric in metrics:
            metrics[f"{cfg.monitor.metric}_best"] = float(best_score)
        if cfg.test:
            metrics.update(_test(cfg, trainer, module, datamodule, run_dir))
        if trainer.is_global_zero:
            _write_results(cfg, run_dir, module, trainer, metrics, n_params,
                           time.perf_counter() - start)
        status = "success"
    finally:
        try:
            for lg in loggers:
                lg.finalize(status)
                if type(lg).__name__ == "WandbLogger" and trainer.is_global_zero:
                    lg.experiment.finish()  # flush the offline run's files
        finally:
            _destroy_process_group()
    return metrics


def _destroy_process_group() -> None:
    """End this rank's process group, if any, before the interpreter shuts down.

    Lightning destroys only an NCCL process group. A gloo one left alive keeps worker threads
    that may free a finished collective's tensors after the interpreter has begun to shut down,
    which aborts the rank ("terminate called without an active exception") after all its work
    is done. Destroying it joins them; it waits for no other rank, so it is safe after an error
    too."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _test(cfg, trainer: L.Trainer, module: Seq2SeqModule, datamodule, run_dir: Path) -> dict:
    """Score every test set of the datamodule with the best weights: its translations go to
    translations/<name>.hyp.txt and its figures to test/<name>/*; the first (headline) set's
    also to translations/test.hyp.txt and test/*, which `test_beam` rescores with beam search."""
    best = getattr(trainer.checkpoint_callback, "best_model_path", "") or None
    trainer.test(module, datamodule=datamodule, ckpt_path=best if best else None, verbose=False)
    if not trainer.is_global_zero or not module.test_scores:
        return {}
    # the module's corpus figures (loss, ppl, unk_share, attention_entropy and the rest)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    beam = cfg.decode.beam
    search = "greedy" if beam <= 1 else f"beam {beam}"
    for index, (name, scores) in enumerate(module.test_scores.items()):
        outputs = module.test_outputs[name]
        refs, srcs = datamodule.references(name), datamodule.sources(name)
        hyps = [outputs.get(i, "") for i in range(len(refs))]
        prefixes = metric_prefixes(index, name)
        # test/<name> -> translations/<name>.hyp.txt, test -> translations/test.hyp.txt
        paths = [run_dir / "translations" / f"{p.rpartition('/')[2]}.hyp.txt" for p in prefixes]
        for out in paths:
            atomic_write_bytes(out, ("\n".join(hyps) + "\n").encode("utf-8"))
        label = "" if name == "test" else f" {name}"
        print(f"\nTest{label} ({'best' if best else 'last'} weights, {search}), "
              f"{len(hyps)} sentences:")
        print(scores)
        shown = cfg.show_examples if index == 0 else 0  # examples of the headline set only
        for i in range(min(shown, len(hyps))):
            print(f"  src: {srcs[i]}\n  ref: {refs[i]}\n  hyp: {hyps[i]}")
        print(f"translations: {', '.join(map(str, paths))}")
        metrics.update(test_set_metrics(index, name, hyps, refs))
    if cfg.get("test_beam"):
        refs, srcs = datamodule.references("test"), datamodule.sources("test")
        with trainer.precision_plugin.forward_context():  # as the test step decodes
            metrics.update(beam_test_scores(module.eval(), srcs, refs, int(cfg.test_beam),
                                            max_tokens=cfg.data.eval_max_tokens,
                                            out_dir=run_dir / "translations",
                                            print_scores=True))
    return metrics


def _write_results(cfg, run_dir: Path, module: Seq2SeqModule, trainer: L.Trainer,
                   metrics: dict, n_params: int, seconds: float) -> None:
    """<run dir>/results.json: the run's RunRecord (seq2seq/record.py), read by report.py and
    lengths.py; its headline figures also go into a W&B run's summary."""
    data, model = module.config["data"], module.model
    fitters = [c for c in trainer.callbacks if isinstance(c, ScheduleToTime)]
    record = RunRecord(
        name=cfg.get("name"),
        config=RunConfig(
            src_lang=data["src"], tgt_lang=data["tgt"],
            encoder=model.encoder.describe(), decoder=model.decoder.describe(),
            attention=model.decoder.attention_name(),
            label_smoothing=cfg.loss.label_smoothing,
            scheduled_sampling=cfg.scheduled_sampling.schedule,
            beam=cfg.decode.beam,
        ),
        overrides=_overrides(),
        params=n_params,
        test_sets=list(module.test_scores),  # names, the headline set (test/*) first
        monitor=cfg.monitor.metric,
        monitor_best=metrics.get(f"{cfg.monitor.metric}_best", metrics.get(cfg.monitor.metric)),
        metrics=metrics,
        epochs=trainer.current_epoch, steps=trainer.global_step,
        train_tokens_per_s=module.train_tokens / max(module.train_seconds, 1e-9),
        seconds=seconds,
        devices=trainer.world_size, accelerator=type(trainer.accelerator).__name__,
        precision={"requested": str(cfg.trainer.precision),
                   "used": str(trainer.precision_plugin.precision),
                   "cpu": cpu_features()},
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs",
        provenance=module.config["provenance"],
        # callbacks.schedule_to_time: where the schedule ended, and what it measured
        schedule_to_time=fitters[0].plan if fitters else None,
    )
    record.write(run_dir / FILENAME)
    for lg in trainer.loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.summary.update(record.headline())


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
