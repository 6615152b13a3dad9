"""Search options: the `decode` section of conf/train.yaml (and translate.py's overrides), as one
dataclass every search reads. Plain Python: the torch-free runtime reads it too."""

from __future__ import annotations

from dataclasses import dataclass, fields

# conf/train.yaml's decode section, which stays where the values are chosen and explained
# (tests/unit/test_config.py holds the two equal): what the torch-free runtime, which reads no
# YAML, decodes with when an export's own `decode` defaults predate an option
DEFAULTS = {"beam": 1, "alpha": 0.6, "coverage": 0.0, "no_repeat_ngram_size": 0, "min_len": 0,
            "max_len_a": 1.5, "max_len_b": 10, "nbest": 1, "sample": False, "temperature": 1.0,
            "top_k": 0, "top_p": 1.0, "seed": None}
# translate.py's padded source tokens per batch (conf/tools/translate.yaml's max_tokens), the
# runtime's default too
MAX_TOKENS = 4000


class DecodeConfigError(ValueError):
    """A search option that is unknown or missing."""


@dataclass
class DecodeOptions:
    """The `decode` section of conf/train.yaml, where every value's default and meaning live.

    beam: beam size (1 = greedy); alpha: length penalty; coverage: coverage penalty beta;
    no_repeat_ngram_size: forbid repeating n-grams (0 = off); min_len: tokens before eos;
    max_len_a, max_len_b: at most a * src_len + b tokens; nbest: hypotheses returned per input;
    sample: draw `nbest` samples instead of searching, with temperature, top_k (0 = off),
    top_p (1 = off) and seed (null = a fresh one).
    """

    beam: int
    alpha: float
    coverage: float
    no_repeat_ngram_size: int
    min_len: int
    max_len_a: float
    max_len_b: int
    nbest: int
    sample: bool
    temperature: float
    top_k: int
    top_p: float
    seed: int | None

    @classmethod
    def from_dict(cls, d: dict, where: str = "decode") -> DecodeOptions:
        """Options from a config section `where`; an unknown or missing key is an error."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise DecodeConfigError(f"{where}.{unknown[0]}: unknown search option; the options are "
                             f"{', '.join(names)}")
        missing = [k for k in names if k not in d]
        if missing:
            raise DecodeConfigError(f"{where}.{missing[0]} is missing (see the decode section of "
                             "conf/train.yaml)")
        for key, value in d.items():
            check_option(key, value, where)
        return cls(**d)


# what each search option may be: (type, lowest value, whether the lowest is allowed, highest)
RANGES = {"beam": (int, 1, True, None), "alpha": (float, 0, True, None),
          "coverage": (float, 0, True, None), "no_repeat_ngram_size": (int, 0, True, None),
          "min_len": (int, 0, True, None), "max_len_a": (float, 0, True, None),
          "max_len_b": (int, 0, True, None), "nbest": (int, 1, True, None),
          "sample": (bool, None, True, None), "temperature": (float, 0, False, None),
          "top_k": (int, 0, True, None), "top_p": (float, 0, False, 1), "seed": (int, None, True,
                                                                                None)}


def check_option(key: str, value, where: str = "decode") -> None:
    """Raise DecodeConfigError naming `where.key=value` (`key=value` with no `where`) when a search option has the wrong type
    or is out of its range (RANGES); seed may be null."""
    kind, low, low_ok, high = RANGES[key]
    name = f"{where}.{key}" if where else key
    if value is None and key == "seed":
        return
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    what = {bool: "true or false", int: "a whole number", float: "a number"}[kind]
    if ok and low is not None and (value < low or (value == low and not low_ok)):
        ok, what = False, f"{what} {'>=' if low_ok else '>'} {low}"
    if ok and high is not None and value > high:
        ok, what = False, f"{what} <= {high}"
    if not ok:
        raise DecodeConfigError(f"{name}={value!r}: give {what}")
