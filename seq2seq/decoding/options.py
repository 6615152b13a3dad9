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
        return cls(**d)
