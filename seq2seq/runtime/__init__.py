"""A decoder for exported models that needs no PyTorch: NumPy, onnxruntime and sentencepiece.

    python export.py ckpt=RUN/checkpoints/last.ckpt out=exported/
    python -c "from seq2seq.runtime import Translator; \\
               print(Translator('exported/').translate(['Ein Hund läuft.'], beam=5))"

`Translator(path, threads=0, max_tokens=4000)` reads an export folder (seq2seq/export.py);
a folder that is missing, incomplete, damaged or of another format version raises
`ExportError` (a ValueError) with a one-line message naming the path and what to do.

`Translator.translate(texts, beam=None, nbest=1, alpha=None, max_len_a=None, max_len_b=None,
with_scores=False, with_attention=False, **options)` translates a list of texts in batches of
similar length (max_tokens padded source tokens), greedy (beam 1) or with batched beam search;
`options` are the other search options of conf/train.yaml's decode section: coverage,
no_repeat_ngram_size, min_len, and sample (with temperature, top_k, top_p, seed). None takes the
model's `decode` default (export.json). It returns one item per text:

- a string, the best translation, when nbest == 1 and neither with_scores nor with_attention;
- else a list of up to `nbest` dicts, best first (an empty list for an empty text):
  {"text": str, "score": float (beam: log_prob / ((5 + |Y|) / 6) ** alpha; greedy:
  log_prob), "tokens": [int] target ids without eos}, and with_attention also
  {"attention": [T][S] weights of each output step over the source pieces (eos included),
  "src_pieces": [S] source pieces with "</s>", "tgt_pieces": [T] output pieces}.

`Translator.info()` -> {path, format_version, languages, vocab_size, parameters, model,
max_len, decode}. Outputs equal translate.py's on the same checkpoint (the search is a port of
seq2seq/decoding/, penalties included). Sampling draws from the same filtered distribution as
translate.py with NumPy's generator: seeded runs repeat, but the samples differ from PyTorch's.
Nothing here imports torch or Lightning.
"""

from seq2seq.runtime.bundle import FORMAT_VERSION, MANIFEST, ExportError
from seq2seq.runtime.search import Hypothesis
from seq2seq.runtime.translator import Translator

__all__ = ["FORMAT_VERSION", "MANIFEST", "ExportError", "Hypothesis", "Translator"]
