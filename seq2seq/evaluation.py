"""evaluate(cfg): score a checkpoint (or an ensemble) on test sets, after training.

    python evaluate.py ckpt=RUN/checkpoints/last.ckpt "test_sets=[test_2016_flickr]" beam=5
    python evaluate.py ckpt=RUN/checkpoints/last.ckpt src=my.de ref=my.en

The figures are those of training's test phase (seq2seq/pipeline.py), under the same names:
test/<set>/bleu, bleu_lc, chrf and len_ratio for each set, the first set's also as test/*. They
are written as a run record (seq2seq/record.py) into the checkpoint's run dir,
`evaluations/<checkpoint>-beam<N>.json`, with each set's translations beside it, or to `out`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from seq2seq.atomic import atomic_write_bytes
from seq2seq.checkpoint import direction, load_ensemble
from seq2seq.data.corpus import read_lines
from seq2seq.data.errors import DataError
from seq2seq.data.multi30k import LANGUAGES, check_test_sets, split_path
from seq2seq.decoding.options import DecodeOptions
from seq2seq.metrics import metric_prefixes, test_set_metrics
from seq2seq.module import Seq2SeqModule
from seq2seq.record import RunConfig, RunRecord
from seq2seq.translation import translate_lines

DECODE_KEYS = ("beam", "alpha", "max_len_a", "max_len_b")  # evaluate.py's search options


def _paths(value) -> list[str]:
    return [str(p) for p in value] if isinstance(value, (list, ListConfig)) else [str(value)]


def _run_dir(ckpt: Path) -> Path:
    """The run dir of a checkpoint written by train.py (RUN/checkpoints/x.ckpt), else its
    folder."""
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def corpora(cfg: DictConfig, way: tuple[str, str] | None) -> dict[str, tuple[Path, Path]]:
    """{name: (source file, reference file)} of the evaluation: the user's src/ref pair, else
    the Multi30k test sets of the model's direction under data_root. Checks every file exists."""
    if cfg.get("src") or cfg.get("ref"):
        if not (cfg.get("src") and cfg.get("ref")):
            raise DataError("src=FILE and ref=FILE go together: the sources to translate and "
                            "their reference translations, one sentence a line")
        sets = {Path(cfg.src).name.split(".")[0] or "corpus": (Path(cfg.src), Path(cfg.ref))}
    else:
        names = list(cfg.test_sets or [])
        check_test_sets(names, (), "test_sets")
        if way is None or not set(way) <= set(LANGUAGES):
            trained = f"was trained on {way[0]} -> {way[1]}" if way else "records no languages"
            raise DataError(f"ckpt={_paths(cfg.ckpt)[0]}: the model {trained}, not a pair of "
                            "Multi30k languages; score it on your files with src=FILE ref=FILE")
        check_test_sets(names, way, "test_sets")
        sets = {n: (split_path(cfg.data_root, n, way[0]), split_path(cfg.data_root, n, way[1]))
                for n in names}
    for src, ref in sets.values():
        for path in (src, ref):
            if not path.is_file():
                raise DataError(f"{path}: no such file; point data_root (or SEQ2SEQ_DATA_DIR) "
                                "at the folder holding multi30k/, or src=/ref= at your files")
    return sets


def _record_path(cfg: DictConfig, beam: int) -> Path:
    if cfg.get("out"):
        return Path(cfg.out)
    paths = [Path(p) for p in _paths(cfg.ckpt)]
    stem = paths[0].stem if len(paths) == 1 else f"ensemble{len(paths)}"
    return _run_dir(paths[0]) / "evaluations" / f"{stem}-beam{beam}.json"


def evaluate(cfg: DictConfig) -> RunRecord:
    """Score cfg.ckpt (one checkpoint or a list, decoded as an ensemble) on cfg.test_sets (or
    on cfg.src against cfg.ref); write and return the record."""
    if not cfg.get("ckpt"):
        raise DataError("ckpt=PATH is required: the checkpoint to score (or ckpt=[PATH,PATH] "
                        "for an ensemble)")
    device = cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    module: Seq2SeqModule = load_ensemble(_paths(cfg.ckpt), map_location=device).to(device)
    way = direction(module)
    sets = corpora(cfg, way)
    decode = {**module.config["decode"],
              **{k: cfg[k] for k in DECODE_KEYS if cfg.get(k) is not None}}
    opts = DecodeOptions.from_dict(decode)
    record_path = _record_path(cfg, opts.beam)
    metrics: dict[str, float] = {}
    with torch.inference_mode():
        for index, (name, (src, ref)) in enumerate(sets.items()):
            srcs, refs = read_lines(src), read_lines(ref)
            if len(srcs) != len(refs):
                raise DataError(f"{ref}: {len(refs)} lines, but {src} has {len(srcs)}; "
                                "a reference translation a source line")
            hyps = translate_lines(module, srcs, max_tokens=cfg.max_tokens, device=device,
                                   opts=opts)
            atomic_write_bytes(record_path.with_suffix("") / f"{name}.hyp.txt",
                               ("\n".join(hyps) + "\n").encode("utf-8"))
            figures = test_set_metrics(index, name, hyps, refs)
            metrics.update(figures)
            p = metric_prefixes(index, name)[-1]
            search = "greedy" if opts.beam == 1 else f"beam {opts.beam}"
            print(f"{name} ({len(hyps)} sentences, {search}): BLEU {figures[f'{p}/bleu']:.2f}, "
                  f"lowercased {figures[f'{p}/bleu_lc']:.2f}, chrF {figures[f'{p}/chrf']:.2f}")
    model = module.model
    first = getattr(model, "members", [model])[0]
    record = RunRecord(
        name="evaluate",
        config=RunConfig(src_lang=way[0] if way else None, tgt_lang=way[1] if way else None,
                         encoder=first.encoder.describe(), decoder=first.decoder.describe(),
                         attention=first.decoder.attention_name(), beam=opts.beam),
        overrides=[f"ckpt={p}" for p in _paths(cfg.ckpt)],
        params=sum(p.numel() for p in module.parameters()),
        test_sets=list(sets), metrics=metrics,
        provenance=module.config.get("provenance") or {},
        extra={"evaluated": {"checkpoints": _paths(cfg.ckpt), "decode": decode,
                             "files": {n: [str(s), str(r)] for n, (s, r) in sets.items()}}})
    record.write(record_path)
    print(f"record: {record_path}", file=sys.stderr)
    return record


def evaluate_config(**overrides) -> DictConfig:
    """evaluate.py's config with `overrides` (for scripts that score runs in a loop)."""
    from seq2seq import CONF_DIR

    base = OmegaConf.load(CONF_DIR / "tools" / "evaluate.yaml")
    base.pop("defaults", None)
    base.pop("hydra", None)
    return OmegaConf.merge(base, overrides)
