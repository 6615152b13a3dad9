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
