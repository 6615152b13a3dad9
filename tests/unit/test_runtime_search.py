"""seq2seq.runtime against PyTorch on tiny exported models: every preset's graphs match
the model, the NumPy search returns the tokens of seq2seq/decoding/, and the runtime
translates in a process where torch cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from seq2seq.data.corpus import read_lines
from seq2seq.data.tokenizer import BOS_ID, EOS_ID, _train_proto
from seq2seq.decoding.beam_search import beam_search as torch_beam_search
from seq2seq.export import _sample, check_graphs, export_graphs, write_export
from seq2seq.models.seq2seq import build_seq2seq
from seq2seq.runtime import ExportError, Translator
from seq2seq.runtime.graphs import Graphs
from seq2seq.runtime.search import State, beam_search, max_output_length
from tests.conftest import (
    DECODE,
    LIMITS,
    PRESETS,
    ROOT,
    model_config,
    search_options,
    src_vocab_for,
)

SRC_V, TGT_V = 50, 60
IDS = {"bos": BOS_ID, "eos": EOS_ID}  # what export.json says of every model here
# every preset, and the options presets leave at one value: layers, input feeding, bridge,
# tied embeddings, a unidirectional encoder, one attention head, dropout (export runs in eval)
CASES = [(p, ()) for p in PRESETS] + [
    ("gru_bahdanau", ("model.encoder.num_layers=2", "model.decoder.num_layers=2")),
    ("lstm_luong_general", ("model.decoder.input_feeding=false", "model.decoder.bridge=false")),
    ("gru_luong_general", ("model.tie_embeddings=true",)),
    ("lstm_bahdanau", ("model.encoder.bidirectional=false", "model.encoder.num_layers=2")),
    ("transformer", ("model.decoder.attention_heads=1", "model.tie_embeddings=false")),
    ("gru_bahdanau", ("model.encoder.dropout=0.3", "model.decoder.dropout=0.3",
                      "model.decoder.hidden_dropout=0.3")),
]


def _model(preset: str, overrides=(), seed: int = 0, sharpen: float = 4.0):
    """A tiny random model; output weights scaled so its distributions are not flat (near
    ties would make the token order depend on the last float bit)."""
    torch.manual_seed(seed)
    cfg = model_config(preset, list(overrides))  # source ids below SRC_V fit a joint TGT_V too
    model = build_seq2seq(cfg, src_vocab_for(cfg, SRC_V, TGT_V), TGT_V).eval()
    with torch.no_grad():
        model.decoder.output.weight.mul_(sharpen)
    return model


def _sessions(model):
    enc, step, layout = export_graphs(model, SRC_V)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return Graphs(ort.InferenceSession(enc, opts), ort.InferenceSession(step, opts), layout)


@pytest.mark.parametrize(("preset", "overrides"), CASES,
                         ids=[f"{p}{'-' + '-'.join(o) if o else ''}" for p, o in CASES])
def test_graphs_match_pytorch(preset, overrides):
    model = _model(preset, overrides)
    enc, step, layout = export_graphs(model, SRC_V)
    assert check_graphs(model, enc, step, layout, SRC_V, steps=5, atol=1e-4) <= 1e-4
    # the output matrix is stored once (tied: shared with the embedding lookup, not a folded
    # transposed copy beside it)
    w = model.decoder.output.weight.detach().numpy()
    copies = [t.name for t in onnx.load_from_string(step).graph.initializer
              if len(t.dims) == 2 and any(
                  a.shape == m.shape and np.array_equal(a, m)
                  for a in [numpy_helper.to_array(t)] for m in (w, w.T))]
    assert len(copies) == 1, copies
    for e in layout:  # hidden and cell are [L, B, H]; everything else is batch first
        assert e["batch_axis"] == (1 if e["name"] in ("hidden", "cell") else 0)
    assert {e["name"] for e in layout} >= {"src_mask"}


@pytest.mark.parametrize("preset", ["gru_bahdanau", "lstm_luong_concat", "transformer",
                                    "transformer_lstm"])
@pytest.mark.parametrize(("beam", "nbest"), [(1, 1), (3, 1), (3, 3)])
def test_search_equals_pytorch(preset, beam, nbest):
    model = _model(preset)
    graphs = _sessions(model)
    src, lengths, mask = _sample(model, SRC_V, [6, 2, 9, 4, 9, 1, 7])
    opts = search_options(beam=beam, nbest=nbest, max_len_b=6)
    want = torch_beam_search(model, src, lengths, mask, opts)
    lens = lengths.numpy()
    got = beam_search(graphs.step, graphs.encode(src.numpy(), lens, mask.numpy()), lens,
                      max_output_length(lens, opts.max_len_a, opts.max_len_b), beam=beam,
                      alpha=opts.alpha, nbest=nbest, **IDS)
    assert [[h.tokens for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in want]
    for g_hyps, w_hyps in zip(got, want, strict=True):
        for g, w in zip(g_hyps, w_hyps, strict=True):
            assert g.score == pytest.approx(w.score, abs=1e-4)
            assert g.log_prob == pytest.approx(w.log_prob, abs=1e-4)
            np.testing.assert_allclose(g.attention, w.attention.numpy(), atol=1e-4)
    ends = [h.tokens for hs in got for h in hs]
    assert len(ends) == len(lens) * nbest


PENALTIES = [  # beam, nbest, coverage beta, no_repeat_ngram_size, min_len
    (3, 2, 0.4, 0, 0), (3, 1, 0.0, 2, 0), (1, 1, 0.0, 1, 0), (1, 1, 0.3, 0, 2), (4, 2, 0.2, 2, 1)]


@pytest.mark.parametrize("preset", ["gru_bahdanau", "transformer"])
@pytest.mark.parametrize(("beam", "nbest", "beta", "ngram", "min_len"), PENALTIES)
def test_penalties_equal_pytorch(preset, beam, nbest, beta, ngram, min_len):
    """The coverage penalty, n-gram blocking and min_len give PyTorch's hypotheses and scores
    (beam 1 with one of them runs the beam loop, as in seq2seq/decoding/beam_search.py)."""
    model = _model(preset, sharpen=2.0)
    graphs = _sessions(model)
    src, lengths, mask = _sample(model, SRC_V, [6, 2, 9, 4, 9, 1, 7])
    opts = search_options(beam=beam, nbest=nbest, coverage=beta, no_repeat_ngram_size=ngram,
                          min_len=min_len, max_len_b=8)
    want = torch_beam_search(model, src, lengths, mask, opts)
    lens = lengths.numpy()
    got = beam_search(graphs.step, graphs.encode(src.numpy(), lens, mask.numpy()), lens,
                      max_output_length(lens, opts.max_len_a, opts.max_len_b), beam=beam,
                      alpha=opts.alpha, nbest=nbest, min_len=min_len, coverage=beta,
                      no_repeat_ngram_size=ngram, **IDS)
    assert [[h.tokens for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in want]
    for g, w in zip([h for hs in got for h in hs], [h for hs in want for h in hs], strict=True):
        assert g.score == pytest.approx(w.score, abs=1e-4)
        assert len(g.tokens) >= min_len
        if ngram:  # no n-gram twice
            grams = [tuple(g.tokens[i : i + ngram]) for i in range(len(g.tokens) - ngram + 1)]
            assert len(grams) == len(set(grams))


def test_ngram_blocking_and_coverage_match_the_torch_functions():
    from seq2seq.decoding.penalties import block_repeated_ngrams as torch_block
    from seq2seq.decoding.penalties import coverage_penalty as torch_coverage
    from seq2seq.runtime.search import block_repeated_ngrams, coverage_penalty

    rng = np.random.default_rng(0)
    logp = rng.normal(size=(4, 7)).astype(np.float32)
    history = rng.integers(0, 7, size=(4, 9))
    for n in (0, 1, 2, 3, 10):
        want = torch_block(torch.from_numpy(logp), torch.from_numpy(history), n).numpy()
        np.testing.assert_array_equal(block_repeated_ngrams(logp, history, n), want)
    cov = rng.uniform(0, 2, size=(4, 6)).astype(np.float32)
    mask = np.arange(6)[None] < np.array([6, 3, 1, 4])[:, None]
    want = torch_coverage(torch.from_numpy(cov), torch.from_numpy(mask), 0.3).numpy()
    np.testing.assert_allclose(coverage_penalty(cov, mask, 0.3), want, rtol=1e-6)


def test_sampling_filters_like_pytorch_and_repeats_with_a_seed():
    from seq2seq.decoding.sampling import top_k_top_p_filter as torch_filter
    from seq2seq.runtime.search import sample, top_k_top_p_filter

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 40)).astype(np.float32) * 3
    for k, p in ((0, 1.0), (5, 1.0), (0, 0.7), (8, 0.5), (1, 1.0)):
        want = torch_filter(torch.from_numpy(logits), k, p).numpy()
        np.testing.assert_array_equal(np.isinf(top_k_top_p_filter(logits, k, p)), np.isinf(want))
    model = _model("gru_bahdanau", sharpen=1.0)
    graphs = _sessions(model)
    src, lengths, mask = _sample(model, SRC_V, [6, 2, 9])
    lens = lengths.numpy()
    limit = max_output_length(lens, 1.0, 6)

    def draw(**kw):
        state = graphs.encode(src.numpy(), lens, mask.numpy())
        return [[h.tokens for h in hs] for hs in sample(graphs.step, state, lens, limit, n=4,
                                                        **IDS, **kw)]

    a = draw(temperature=1.0, top_k=0, top_p=1.0, seed=3)
    assert a == draw(temperature=1.0, top_k=0, top_p=1.0, seed=3)  # seeded: repeats
    assert len({tuple(t) for hs in a for t in hs}) > 3  # flat model: the samples differ
    # top_k 1 is greedy search
    greedy = beam_search(graphs.step, graphs.encode(src.numpy(), lens, mask.numpy()), lens,
                         limit, beam=1, alpha=0.0, nbest=1, **IDS)
    one = draw(temperature=0.7, top_k=1, top_p=1.0, seed=None)
    assert one == [[g[0].tokens] * 4 for g in greedy]
    with pytest.raises(ValueError, match="temperature=0"):
        draw(temperature=0, top_k=0, top_p=1.0, seed=1)


def test_nbest_wider_than_beam_is_refused():
    model = _model("gru_bahdanau")
    graphs = _sessions(model)
    src, lengths, mask = _sample(model, SRC_V, [3])
    lens = lengths.numpy()
    with pytest.raises(ValueError, match="nbest=4 cannot exceed the beam size 2"):
        beam_search(graphs.step, graphs.encode(src.numpy(), lens, mask.numpy()), lens,
                    np.array([5]), beam=2, alpha=0.6, nbest=4, **IDS)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, data_root):
    """A tiny random Transformer exported with SentencePiece models of 100 pieces."""
    lines = read_lines(data_root / "multi30k" / "train.de.gz")[:300]
    proto = _train_proto(lines, 100, "unigram")
    torch.manual_seed(0)
    model = build_seq2seq(model_config("transformer"), 100, 100).eval()
    out = tmp_path_factory.mktemp("export") / "tiny"
    return write_export(out, model, proto, proto, {**DECODE, "max_len_b": 5},
                        languages=("de", "de"), max_len=100)


def test_translator_api(export_dir):
    tr = Translator(export_dir, threads=1)
    texts = ["Ein Hund läuft.", "", "Zwei Männer spielen Fußball."]
    best = tr.translate(texts, beam=3)
    assert len(best) == 3 and all(isinstance(t, str) for t in best) and best[1] == ""
    lists = tr.translate(texts, beam=3, nbest=2, with_attention=True)
    assert lists[1] == [] and [len(x) for x in lists] == [2, 0, 2]
    first = lists[0][0]
    assert first["text"] == best[0] and first["score"] >= lists[0][1]["score"]
    att = np.array(first["attention"])
    assert att.shape == (len(first["tgt_pieces"]), len(first["src_pieces"]))
    assert np.allclose(att.sum(1), 1, atol=1e-5) and first["src_pieces"][-1] == "</s>"
    # as translate.py: an n-best list widens the beam to n
    widened = tr.translate(texts[:1], beam=1, nbest=2)[0]
    assert len(widened) == 2 and widened == tr.translate(texts[:1], beam=2, nbest=2)[0]
    info = tr.info()
    assert info["languages"] == {"src": "de", "tgt": "de"}
    assert info["vocab_size"] == {"src": 100, "tgt": 100} and info["parameters"] > 0
    assert info["decode"]["max_len_b"] == 5 and info["format_version"] == 1
    with pytest.raises(TypeError, match="list of texts"):
        tr.translate("Ein Hund läuft.")
    # every search option of the decode section, by name
    blocked = tr.translate(texts, beam=3, nbest=2, no_repeat_ngram_size=1, coverage=0.2,
                           with_scores=True)
    assert all(len(set(h["tokens"])) == len(h["tokens"]) for hs in blocked for h in hs)
    samples = tr.translate(texts, nbest=3, sample=True, top_k=5, seed=7)
    assert [len(x) for x in samples] == [3, 0, 3]
    assert samples == tr.translate(texts, nbest=3, sample=True, top_k=5, seed=7)
    with pytest.raises(ValueError, match="beam_size: unknown search option"):
        tr.translate(texts, beam_size=3)


def test_damaged_export_dirs(export_dir, tmp_path):
    import shutil

    with pytest.raises(ExportError, match="no such export folder"):
        Translator(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(export_dir, broken)
    step = broken / "decoder_step.onnx"
    step.write_bytes(step.read_bytes()[:1000])
    with pytest.raises(ExportError, match=r"decoder_step.onnx: 1000 bytes.*export the checkpoint"):
        Translator(broken)
    manifest = json.loads((export_dir / "export.json").read_text())
    manifest["files"]["decoder_step"]["bytes"] = 1000  # consistent sizes, damaged graph
    (broken / "export.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="cannot be loaded"):
        Translator(broken)
    (broken / "export.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ExportError, match="format version 99, this runtime reads version 1"):
        Translator(broken)
    (broken / "export.json").unlink()
    with pytest.raises(ExportError, match="not a complete export"):
        Translator(broken)
    assert issubclass(ExportError, ValueError)


def test_runtime_needs_no_torch(export_dir):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "try:\n    import torch\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('torch is importable')\n"
        "from seq2seq.runtime import Translator\n"
        f"out = Translator({str(export_dir)!r}, threads=1).translate(['Ein Hund läuft.'], beam=3)\n"
        "assert not {'lightning', 'hydra', 'omegaconf'} & set(sys.modules), sys.modules.keys()\n"
        "print(repr(out))\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    here = Translator(export_dir, threads=1).translate(["Ein Hund läuft."], beam=3)
    assert run.stdout.strip() == repr(here)


def test_the_search_takes_its_special_ids_from_the_caller():
    """The runtime states no ids of its own: a model whose export.json says bos 7, eos 5
    starts from 7 and stops at 5."""
    fed = []

    def step(prev, state):  # always most likely: token 5, then 6 when 5 is blocked
        fed.append(prev.tolist())
        logp = np.full((len(prev), 9), -9.0, dtype=np.float32)
        logp[:, 6], logp[:, 5] = -2.0, -0.1
        return logp, state, np.ones((len(prev), 2), dtype=np.float32) / 2

    state = State({"h": np.zeros((1, 1), dtype=np.float32)},
                  [{"name": "h", "batch_axis": 0, "static": False}])
    lens, limit = np.array([2]), np.array([6])
    (greedy,), = beam_search(step, state, lens, limit, beam=1, alpha=0.0, nbest=1, bos=7, eos=5)
    assert fed[0] == [7] and greedy.tokens == []  # eos 5 at once
    (beam,), = beam_search(step, state, lens, limit, beam=2, alpha=0.0, nbest=1, min_len=2,
                           bos=7, eos=5)
    assert beam.tokens == [6, 6]  # 5 blocked for two steps, then chosen as eos
    assert (IDS["bos"], IDS["eos"]) == (BOS_ID, EOS_ID)
    assert LIMITS["max_len_a"] > 0
