"""Corpus BLEU and chrF with sacreBLEU, scored on detokenized hypotheses vs raw references."""

from __future__ import annotations

from dataclasses import dataclass

import sacrebleu


@dataclass
class Scores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    length_ratio: float = 1.0  # hypothesis / reference length (BLEU's brevity statistics)

    def __str__(self) -> str:
        return (f"BLEU {self.bleu:.2f} ({self.bleu_signature})\n"
                f"chrF {self.chrf:.2f} ({self.chrf_signature})")


def corpus_scores(hypotheses: list[str], references: list[str],
                  lowercase: bool = False) -> Scores:
    """Cased (by default) corpus BLEU and chrF of aligned hypotheses and references."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu = sacrebleu.metrics.BLEU(lowercase=lowercase)
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return Scores(b.score, c.score, str(bleu.get_signature()), str(chrf.get_signature()),
                  b.sys_len / max(b.ref_len, 1))


def metric_prefixes(index: int, name: str) -> tuple[str, ...]:
    """Metric prefixes of the `index`-th test set, called `name`: the first (headline) set is
    test/*, and a named set (any but the unnamed "test") is also test/<name>/*."""
    return (("test",) if index == 0 else ()) + ((f"test/{name}",) if name != "test" else ())


def test_set_metrics(index: int, name: str, hypotheses: list[str],
                     references: list[str]) -> dict[str, float]:
    """The figures the test phase reports for the `index`-th test set, `name` (training's
    end, evaluate.py): bleu, bleu_lc (lowercased), chrf and len_ratio under each of its
    metric_prefixes."""
    scores = corpus_scores(hypotheses, references)
    lowercased = corpus_scores(hypotheses, references, lowercase=True)
    out = {}
    for p in metric_prefixes(index, name):
        out.update({f"{p}/bleu": scores.bleu, f"{p}/chrf": scores.chrf,
                    f"{p}/bleu_lc": lowercased.bleu, f"{p}/len_ratio": scores.length_ratio})
    return out
