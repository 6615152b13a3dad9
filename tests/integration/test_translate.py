"""translate(cfg) options on the tiny run's checkpoint: beam, n-best, scores, sampling,
attention heatmaps, BLEU against references."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest
import torch
from hydra import compose, initialize_config_dir

from seq2seq.checkpoint import CheckpointError, load_module
from seq2seq.data.corpus import read_lines
from seq2seq.data.tokenizer import _train_proto
from seq2seq.decoding.options import DecodeOptions
from seq2seq.precision import PrecisionError
from seq2seq.translation import translate, translate_lines
from tests.conftest import MAX_TOKENS, TOOLS, compose_train, count_casts

LINES = ["Ein Mann fährt Fahrrad.", "", "Zwei Hunde spielen im Schnee.", "Eine Frau liest."]


def _cfg(overrides):
    with initialize_config_dir(str(TOOLS), version_base="1.3"):
        return compose("translate", overrides=overrides)


def _with_direction(ckpt_path, src: str, tgt: str, out):
    """A copy of a checkpoint that records another direction (same weights): a stand-in for a
    model trained the other way, or on another language pair."""
    ckpt = torch.load(ckpt_path, weights_only=True)
    ckpt["hyper_parameters"]["config"]["data"].update(src=src, tgt=tgt)
    torch.save(ckpt, out)
    return out


def _files(tmp_path, tiny_run):
    (tmp_path / "IN").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return [f"ckpt={tiny_run[0] / 'checkpoints' / 'last.ckpt'}", f"src={tmp_path / 'IN'}"]


def test_beam_nbest_and_scores(tiny_run, tmp_path):
    out = tmp_path / "OUT"
    translate(_cfg([*_files(tmp_path, tiny_run), f"out={out}", "beam=4", "nbest=3",
                    "scores=true"]))
    rows = out.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 3 * len(LINES)
    for i in (0, 2, 3):
        scores = [float(r.split("\t")[0]) for r in rows[3 * i : 3 * i + 3]]
        assert scores == sorted(scores, reverse=True)
    assert rows[3:6] == ["", "", ""]  # the empty line


def test_beam_one_equals_greedy_flag(tiny_run, tmp_path):
    a = translate(_cfg([*_files(tmp_path, tiny_run), f"out={tmp_path / 'A'}", "beam=1"]))
    b = translate(_cfg([*_files(tmp_path, tiny_run), f"out={tmp_path / 'B'}", "greedy=true"]))
    assert a == b and len(a) == len(LINES)


def test_sampling_repeats_with_its_seed_and_differs_with_another(tiny_run, tmp_path):
    common = [*_files(tmp_path, tiny_run), "sample=true", "top_p=0.9", "temperature=1.2",
              "nbest=2"]
    a = translate(_cfg([*common, "seed=3", f"out={tmp_path / 'A'}"]))
    b = translate(_cfg([*common, "seed=3", f"out={tmp_path / 'B'}"]))
    assert a == b and len(a) == 2 * len(LINES)
    assert translate(_cfg([*common, "seed=4", f"out={tmp_path / 'C'}"])) != a


def test_attention_heatmaps_and_reference_scores(tiny_run, tmp_path, capsys):
    (tmp_path / "REF").write_text("A man rides a bike.\n\nTwo dogs play in the snow.\n"
                                  "A woman reads.\n")
    translate(_cfg([*_files(tmp_path, tiny_run), f"out={tmp_path / 'OUT'}", "beam=3",
                    f"attention_png={tmp_path / 'att'}", f"ref={tmp_path / 'REF'}"]))
    pngs = sorted(p.name for p in (tmp_path / "att").glob("*.png"))
    assert pngs == ["00001.png", "00003.png", "00004.png"]
    assert (tmp_path / "att" / "00001.png").read_bytes()[:4] == b"\x89PNG"
    err = capsys.readouterr().err
    assert err.startswith("translating train.de -> train.en with ")  # the direction it loaded
    assert "BLEU" in err and "nrefs:1|case:mixed" in err and "chrF" in err
    assert "nrefs:1|case:lc" in err  # lowercased BLEU too


def test_long_line_is_translated_with_a_warning_naming_it(tiny_run, caplog):
    module = load_module(tiny_run[0] / "checkpoints" / "last.ckpt")
    assert module.config["data"]["max_len"] == 100  # the training data.max_len travels along
    long_line = " ".join(["Ein Hund läuft schnell über die grüne Wiese."] * 25)
    opts = replace(DecodeOptions.from_dict(module.config["decode"]), beam=2, max_len_a=0.2,
                   max_len_b=5)
    with caplog.at_level(logging.WARNING, logger="seq2seq.translation"):
        out = translate_lines(module, ["Ein Hund.", long_line, "Eine Katze."], opts=opts,
                              max_tokens=MAX_TOKENS)
    assert len(out) == 3 and out[1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("line 2 has ") and "data.max_len" in warnings[0]


def test_training_also_scores_the_test_split_with_beam_search(tiny_run):
    from seq2seq.metrics import corpus_scores

    run_dir, metrics, overrides = tiny_run
    refs_file = next(o.split("=", 1)[1] for o in overrides if o.startswith("data.test.tgt="))
    refs = read_lines(refs_file)
    hyps = (run_dir / "translations" / "test.beam3.hyp.txt").read_text(encoding="utf-8")
    hyps = hyps.splitlines()
    assert len(hyps) == len(refs) == 40
    assert metrics["test/beam"] == 3
    assert metrics["test/bleu_beam"] == corpus_scores(hyps, refs).bleu
    assert metrics["test/bleu_lc_beam"] == corpus_scores(hyps, refs, lowercase=True).bleu
    results = json.loads((run_dir / "results.json").read_text())
    assert results["metrics"]["test/bleu_beam"] == metrics["test/bleu_beam"]


def test_rescoring_a_run_with_beam_one_reproduces_its_greedy_test_bleu(tiny_run, tmp_path):
    """experiments/rescore.py on a copy of the run: beam 1 must give the greedy test BLEU that
    training measured; the results.json gains the beam metrics."""
    import shutil

    from omegaconf import OmegaConf

    from experiments.rescore import rescore

    run_dir, metrics, overrides = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / ".hydra").mkdir(exist_ok=True)
    cfg = compose_train([*overrides, f"run_dir={copy}"])
    (copy / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    scores = rescore(copy, beam=1)
    assert scores["test/bleu_beam"] == metrics["test/bleu"]
    greedy = (run_dir / "translations" / "test.hyp.txt").read_text(encoding="utf-8")
    assert (copy / "translations" / "test.beam1.hyp.txt").read_text(encoding="utf-8") == greedy
    saved = json.loads((copy / "results.json").read_text())["metrics"]
    assert saved["test/bleu_beam"] == metrics["test/bleu"] and saved["test/beam"] == 1


def test_ensemble_of_checkpoints(tiny_run, tmp_path):
    """ckpt=[A,B]: an ensemble of a model with itself translates as the model does; an ensemble
    of two different checkpoints translates unlike either alone (both members count); a model
    with other SentencePiece models is refused, naming its file."""
    last = tiny_run[0] / "checkpoints" / "last.ckpt"
    files = _files(tmp_path, tiny_run)[1:]
    single = translate(_cfg([f"ckpt={last}", *files, f"out={tmp_path / 'A'}", "beam=3"]))
    both = translate(_cfg([f"ckpt=[{last},{last}]", *files, f"out={tmp_path / 'B'}", "beam=3"]))
    assert both == single and len(both) == len(LINES)

    # a second model: last.ckpt's weights moved by seeded noise (not the run's best
    # checkpoint, which may hold the same weights as last.ckpt on some CPU)
    ckpt = torch.load(last, weights_only=True)
    g = torch.Generator().manual_seed(0)
    for k, v in ckpt["state_dict"].items():
        if v.is_floating_point():
            ckpt["state_dict"][k] = v + 0.5 * torch.randn(v.shape, generator=g)
    moved = tmp_path / "moved.ckpt"
    torch.save(ckpt, moved)
    alone = translate(_cfg([f"ckpt={moved}", *files, f"out={tmp_path / 'E'}", "beam=3"]))
    pair = translate(_cfg([f"ckpt=[{last},{moved}]", *files, f"out={tmp_path / 'F'}", "beam=3"]))
    assert len(pair) == len(LINES) and pair != single and pair != alone

    other_way = _with_direction(last, "train.en", "train.de", tmp_path / "en_de.ckpt")
    with pytest.raises(CheckpointError, match=r"en_de\.ckpt translates train\.en -> train\.de, "
                                              r"but an ensemble with .*last\.ckpt \(train\.de "
                                              r"-> train\.en\) needs a model that translates "
                                              r"train\.de -> train\.en"):
        translate(_cfg([f"ckpt=[{last},{other_way}]", *files, f"out={tmp_path / 'D'}"]))
    assert not (tmp_path / "D").exists()

    ckpt = torch.load(last, weights_only=True)
    proto = _train_proto(LINES * 20, 40, "unigram")
    ckpt["tokenizers"]["tgt"] = torch.frombuffer(bytearray(proto), dtype=torch.uint8)
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match=r"other\.ckpt: its SentencePiece models are not "
                                              r"those of .*last\.ckpt;"):
        translate(_cfg([f"ckpt=[{last},{tmp_path / 'other.ckpt'}]", *files,
                        f"out={tmp_path / 'C'}"]))
    assert not (tmp_path / "C").exists()


def test_reranking_with_a_reverse_model(tiny_run, tmp_path, caplog):
    """rerank=REVERSE: weight 0 keeps the beam's order; a weight reorders the whole beam by the
    added channel score (written with scores=true, best first); a model whose SentencePiece
    models are not the direct model's swapped is refused, naming its file."""
    forward = tiny_run[0] / "checkpoints" / "last.ckpt"
    last = _with_direction(forward, "train.en", "train.de", tmp_path / "reverse.ckpt")
    files = _files(tmp_path, tiny_run)
    plain = translate(_cfg([*files, f"out={tmp_path / 'A'}", "beam=4"]))
    kept = translate(_cfg([*files, f"out={tmp_path / 'B'}", "beam=4", f"rerank={last}",
                           "rerank_weight=0"]))
    assert kept == plain
    caplog.clear()
    greedy = translate(_cfg([*files, f"out={tmp_path / 'G'}", "beam=1", f"rerank={last}"]))
    assert "one candidate a sentence" in caplog.text
    assert greedy == translate(_cfg([*files, f"out={tmp_path / 'H'}", "beam=1"]))

    beam = translate(_cfg([*files, f"out={tmp_path / 'C'}", "beam=4", "nbest=4",
                           "scores=true"]))
    reranked = translate(_cfg([*files, f"out={tmp_path / 'D'}", "beam=4", "nbest=4",
                               "scores=true", f"rerank={last}", "rerank_weight=2.0"]))
    assert len(reranked) == 4 * len(LINES)
    for i in (0, 2, 3):
        rows = [r.split("\t") for r in reranked[4 * i : 4 * i + 4]]
        scores = [float(s) for s, _ in rows]
        assert scores == sorted(scores, reverse=True)
        before = {t: float(s) for s, t in (r.split("\t") for r in beam[4 * i : 4 * i + 4])}
        assert {t for _, t in rows} == set(before)  # the same candidates, reordered
        # the channel log-probability only lowers a score
        assert all(float(s) < before[t] for s, t in rows)

    with pytest.raises(CheckpointError, match=r"rerank=.*last\.ckpt translates train\.de -> "
                                              r"train\.en, but reranking ckpt=.*last\.ckpt "
                                              r"\(train\.de -> train\.en\) needs a model that "
                                              r"translates train\.en -> train\.de"):
        translate(_cfg([*files, f"out={tmp_path / 'F'}", f"rerank={forward}"]))
    assert not (tmp_path / "F").exists()

    ckpt = torch.load(last, weights_only=True)
    proto = _train_proto(LINES * 20, 40, "unigram")
    ckpt["tokenizers"]["src"] = torch.frombuffer(bytearray(proto), dtype=torch.uint8)
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match=r"rerank=.*other\.ckpt: its SentencePiece models "
                                              r"are not those of ckpt=.*last\.ckpt swapped"):
        translate(_cfg([*files, f"out={tmp_path / 'E'}", f"rerank={tmp_path / 'other.ckpt'}"]))
    assert not (tmp_path / "E").exists()


def test_bf16_translation_casts_the_weights_and_translates_like_float32(tiny_run, tmp_path,
                                                                       monkeypatch):
    """bf16 gives float32's best translation of every line (none may differ), and every n-best
    score within bf16 rounding. Below the best, the tiny model's candidates lie within a few
    hundredths of each other in float32, and bf16 rounding legitimately reorders them: those
    rows are compared on scores only."""
    casts = count_casts(monkeypatch, "seq2seq.translation.cast_weights")
    files = _files(tmp_path, tiny_run)
    fp32 = translate(_cfg([*files, f"out={tmp_path / 'A'}", "beam=3", "nbest=3",
                           "scores=true"]))
    bf16 = translate(_cfg([*files, f"out={tmp_path / 'B'}", "beam=3", "nbest=3",
                           "scores=true", "precision=bf16"]))
    assert casts == [torch.float32, torch.bfloat16]  # once per run, not per batch or step
    assert len(bf16) == len(fp32) == 3 * len(LINES) and bf16[3:6] == ["", "", ""]
    best = [fp32[3 * i].split("\t")[-1] for i in range(len(LINES))]
    assert [bf16[3 * i].split("\t")[-1] for i in range(len(LINES))] == best
    assert all(best[i].strip() for i in (0, 2, 3))
    for a, b in zip(fp32, bf16, strict=True):  # the same search, scores within bf16 rounding
        if a:
            assert abs(float(a.split("\t")[0]) - float(b.split("\t")[0])) < 0.5
    with pytest.raises(PrecisionError, match="precision=half: choose 32"):
        translate(_cfg([*files, f"out={tmp_path / 'C'}", "precision=half"]))
    assert not (tmp_path / "C").exists()
