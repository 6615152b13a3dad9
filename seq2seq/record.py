"""A run's record: results.json, written once at the end of training (seq2seq/pipeline.py) and
read by whatever compares runs (report.py, lengths.py, the notebooks).

The record is versioned (`schema_version`); a results.json written before the version existed
reads as version 0, its missing keys at their defaults. Keys this version does not know are
kept (`extra`), so reading and writing a newer file loses nothing. The labels and number
formats here are the ones every table and plot of runs shows.

Plain Python: it imports neither Lightning nor Hydra, so a notebook or script can read runs.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from seq2seq.atomic import atomic_write_bytes
from seq2seq.data.errors import DataError

SCHEMA_VERSION = 1  # raise it when a key changes meaning, and read the older versions here
FILENAME = "results.json"

_NUMBER = (int, float)
# the type each key holds when present (null is always allowed: "not measured")
_TYPES: dict[str, type | tuple[type, ...]] = {
    "schema_version": int, "config": dict, "overrides": list, "params": int, "test_sets": list,
    "monitor": str, "monitor_best": _NUMBER, "metrics": dict, "epochs": int, "steps": int,
    "train_tokens_per_s": _NUMBER, "seconds": _NUMBER, "devices": int, "accelerator": str,
    "precision": dict, "machine": str, "provenance": dict, "schedule_to_time": dict,
}
_CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {"label_smoothing": _NUMBER, "beam": int}


class RunRecordError(DataError):
    """A results.json that is missing, unreadable or damaged; the message names the file."""


@dataclass
class RunConfig:
    """What the run trained: the direction, the model's parts as their own `describe()` names
    them (seq2seq/models/contract.py), the regularizers and the configured search."""

    src_lang: str | None = None
    tgt_lang: str | None = None
    encoder: str | None = None
    decoder: str | None = None
    attention: str | None = None
    label_smoothing: float | None = None
    scheduled_sampling: str | None = None
    beam: int | None = None
    extra: dict = field(default_factory=dict)  # keys this version does not know, as read

    @property
    def direction(self) -> str:
        """'de->en'."""
        return f"{_part(self.src_lang)}->{_part(self.tgt_lang)}"

    def to_dict(self) -> dict:
        return _known(self) | self.extra


@dataclass
class RunRecord:
    """One finished run's results: the one description of results.json. Figures not measured
    (or absent from an older file) are None."""

    schema_version: int = SCHEMA_VERSION
    name: str | None = None  # the experiment name (cfg.name)
    config: RunConfig = field(default_factory=RunConfig)
    overrides: list[str] = field(default_factory=list)  # the command line's Hydra overrides
    params: int | None = None
    test_sets: list[str] = field(default_factory=list)  # names, the headline set (test/*) first
    monitor: str = "val/bleu"  # the metric checkpointing and early stopping follow
    monitor_best: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # `stage/name` -> value
    epochs: int | None = None
    steps: int | None = None
    train_tokens_per_s: float | None = None
    seconds: float | None = None  # wall clock of the whole run, test included
    devices: int | None = None
    accelerator: str | None = None
    precision: dict = field(default_factory=dict)  # {requested, used, cpu}
    machine: str | None = None
    provenance: dict = field(default_factory=dict)  # seq2seq/provenance.py
    schedule_to_time: dict | None = None  # the schedule_to_time callback's plan; absent from the file if None
    extra: dict = field(default_factory=dict)  # keys this version does not know, as read

    # -- the file --------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """results.json's content: the keys in field order, then the unknown ones read."""
        out = _known(self)
        out["config"] = self.config.to_dict()
        if self.schedule_to_time is None:
            del out["schedule_to_time"]
        return out | {k: v for k, v in self.extra.items() if k not in out}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def write(self, path: str | Path) -> None:
        """Write the record to `path` atomically (a crash never leaves half a file)."""
        atomic_write_bytes(path, self.to_json().encode("utf-8"))

    @classmethod
    def from_dict(cls, data: object, source: str | Path = "results.json") -> RunRecord:
        """The record of a results.json's parsed content, of this schema version or an older
        one (missing keys take their defaults). Raises RunRecordError naming `source` for
        content no version wrote."""
        if not isinstance(data, dict):
            raise RunRecordError(f"{source}: holds a JSON {type(data).__name__}, not the object "
                                 "train.py writes; train or rescore the run again")
        _check_types(data, _TYPES, source)
        _check_types(data.get("config") or {}, _CONFIG_TYPES, f"{source}: config")
        version = data.get("schema_version") or 0  # 0: written before versions existed
        if version > SCHEMA_VERSION:
            raise RunRecordError(f"{source}: schema_version {version} was written by a newer "
                                 f"seq2seq; this one reads up to {SCHEMA_VERSION}: update it")
        record = _build(cls, {**data, "schema_version": SCHEMA_VERSION}, skip=("config",))
        record.config = _build(RunConfig, data.get("config") or {})
        return record

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        """The record in the results.json at `path`. Raises RunRecordError naming the file when
        it is missing, unreadable, not JSON, or holds keys of the wrong type."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunRecordError(f"{path}: no such file; point at a run dir whose training "
                                 f"finished (train.py writes {FILENAME} at the end)") from None
        except (OSError, UnicodeDecodeError) as e:
            raise RunRecordError(f"{path}: cannot be read ({e})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RunRecordError(f"{path}: not valid JSON ({e}); the run's training did not "
                                 "finish writing it, or it was edited: train or rescore the "
                                 "run again") from None
        return cls.from_dict(data, path)

    # -- what tables and plots show ----------------------------------------------------------

    @property
    def label(self) -> str:
        """'name encoder/decoder/attention src-tgt': how tables and plots name the run."""
        c = self.config
        parts = (self.name, f"{_part(c.encoder)}/{_part(c.decoder)}/{_part(c.attention)}",
                 f"{_part(c.src_lang)}-{_part(c.tgt_lang)}")
        return " ".join(str(p) for p in parts if p is not None)

    @property
    def headline_test_set(self) -> str:
        """The test set whose figures are test/* ("test" for a run that names none)."""
        return (self.test_sets or ["test"])[0]

    def headline(self) -> dict[str, float]:
        """The figures a run is compared by (a W&B run's summary): the best monitored value,
        the headline test set's BLEU, the size, the speed and the time; unmeasured ones left
        out."""
        figures = {f"{self.monitor}_best": self.monitor_best,
                   **{k: self.metrics.get(k) for k in ("test/bleu", "test/bleu_lc", "test/chrf",
                                                       "test/bleu_beam")},
                   "params": self.params, "steps": self.steps, "seconds": self.seconds,
                   "train_tokens_per_s": self.train_tokens_per_s}
        return {k: v for k, v in figures.items() if v is not None}


def run_labels(run_dirs: list[Path], records: list[RunRecord]) -> list[str]:
    """Each run's label, with its dir's name (then its path) added where the label alone does
    not tell the runs apart."""
    labels = [r.label for r in records]
    for more in (lambda p: Path(p).name, str):
        labels = [f"{lab} ({more(p)})" if labels.count(lab) > 1 else lab
                  for lab, p in zip(labels, run_dirs, strict=True)]
    return labels


# -- number formats: every table of runs shows a figure the same way ---------------------------


def format_number(x: float | None, digits: int = 2) -> str:
    """`digits` decimals; "-" for a figure not measured."""
    return "-" if x is None else f"{x:.{digits}f}"


def format_bleu(x: float | None) -> str:
    """BLEU (or chrF) to 2 decimals, as sacreBLEU prints it: '35.92'; "-" if not measured."""
    return format_number(x, 2)


def format_params(n: int | None) -> str:
    """Millions of parameters to 1 decimal: '12.3M'."""
    return "-" if n is None else f"{n / 1e6:.1f}M"


def format_rate(tokens_per_s: float | None) -> str:
    """Tokens a second, whole: '10234'."""
    return format_number(tokens_per_s, 0)


def format_minutes(seconds: float | None) -> str:
    """Seconds as minutes to 1 decimal: '12.5 min'."""
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


# -- reading and writing -----------------------------------------------------------------------------------


def _part(x) -> str:
    return "?" if x is None else str(x)


def _known(obj) -> dict:
    """The dataclass's fields but `extra`, in order (containers copied, not shared)."""
    return {f.name: copy.deepcopy(getattr(obj, f.name)) for f in fields(obj)
            if f.name != "extra"}


def _build(cls, data: dict, skip: tuple[str, ...] = ()):
    """`cls` from the keys it knows in `data` (a null one: its default), the others but `skip`
    kept in its `extra`."""
    known = {f.name for f in fields(cls)} - {"extra", *skip}
    return cls(**{k: data[k] for k in known if data.get(k) is not None},
               extra={k: v for k, v in data.items() if k not in known and k not in skip})


def _check_types(data: dict, types: dict, source) -> None:
    """Raise RunRecordError naming `source` and the first key whose value has the wrong type."""
    for key, kind in types.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            want = {int: "a whole number", str: "a string", dict: "an object",
                    list: "a list"}.get(kind, "a number")
            raise RunRecordError(f"{source}: {key} is {json.dumps(value)[:60]}, not {want}; "
                                 "the file is damaged: train or rescore the run again")
    bad = [k for k, v in (data.get("metrics") or {}).items()
           if v is not None and (not isinstance(v, _NUMBER) or isinstance(v, bool))]
    if bad:
        raise RunRecordError(f"{source}: metrics[{bad[0]!r}] is not a number; the file is "
                             "damaged: train or rescore the run again")
