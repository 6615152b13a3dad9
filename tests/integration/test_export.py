"""export(cfg) on the tiny run's checkpoint: the folder it writes, the runtime's translations
against translate.py's, and the errors for bad checkpoints and damaged export folders."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from seq2seq.checkpoint import CheckpointError, load_module
from seq2seq.data.corpus import read_lines
from seq2seq.data.errors import DataError
from seq2seq.export import export
from seq2seq.runtime import ExportError, Translator
from seq2seq.translation import translate_lines
from tests.conftest import MAX_TOKENS, ROOT, TOOLS, search_options

pytestmark = pytest.mark.slow  # the tiny_run fixture trains a model


def _cfg(overrides):
    with initialize_config_dir(str(TOOLS), version_base="1.3"):
        return compose("export", overrides=overrides)


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    ckpt = tiny_run[0] / "checkpoints" / "last.ckpt"
    out = tmp_path_factory.mktemp("exported") / "model"
    assert export(_cfg([f"ckpt={ckpt}", f"out={out}"])) == out
    return ckpt, out


def test_export_writes_the_folder(exported):
    ckpt, out = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "decoder_step.onnx", "encoder.onnx", "export.json", "src.model", "tgt.model"]
    m = json.loads((out / "export.json").read_text())
    module = load_module(ckpt)
    assert m["format_version"] == 1 and m["decode"] == module.config["decode"]
    assert m["vocab_size"]["tgt"] == len(module.tgt_tokenizer)
    assert m["ids"] == {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
    assert [e["name"] for e in m["state"]] == ["hidden", "feed", "keys", "values", "src_mask"]
    assert m["max_abs_diff"] <= 1e-4
    assert (out / "src.model").read_bytes() == module.src_tokenizer.model_proto


@pytest.mark.parametrize("beam", [1, 5])
def test_runtime_equals_translate(exported, data_root, beam):
    ckpt, out = exported
    lines = read_lines(data_root / "multi30k" / "test_2016_flickr.de.gz")[:60] + ["", "  "]
    module = load_module(ckpt)
    want = translate_lines(module, lines, max_tokens=MAX_TOKENS,
                           opts=search_options(beam=beam))
    got = Translator(out, threads=1).translate(lines, beam=beam)
    assert got == want


def test_scores_equal_translate_nbest(exported, data_root):
    from seq2seq.translation import search_lines

    ckpt, out = exported
    lines = read_lines(data_root / "multi30k" / "test_2016_flickr.de.gz")[:20]
    _, want = search_lines(load_module(ckpt), lines, search_options(beam=4, nbest=3),
                           max_tokens=MAX_TOKENS)
    got = Translator(out, threads=1).translate(lines, beam=4, nbest=3, with_scores=True)
    assert [[h["tokens"] for h in hs] for hs in got] == [[h.tokens for h in hs] for hs in want]
    for g, w in zip(got, want, strict=True):
        assert [h["score"] for h in g] == pytest.approx([h.score for h in w], abs=1e-4)


def test_export_errors(tmp_path, exported):
    with pytest.raises(DataError, match="ckpt=PATH is required"):
        export(_cfg([f"out={tmp_path / 'x'}"]))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        export(_cfg([f"ckpt={tmp_path / 'none.ckpt'}", f"out={tmp_path / 'x'}"]))
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(exported[0].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        export(_cfg([f"ckpt={truncated}", f"out={tmp_path / 'x'}"]))
    assert not (tmp_path / "x").exists()


def test_damaged_export_is_one_line(exported, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(exported[1], broken)
    enc = broken / "encoder.onnx"
    enc.write_bytes(enc.read_bytes()[: enc.stat().st_size // 2])
    with pytest.raises(ExportError, match=r"encoder.onnx: \d+ bytes, the export wrote") as e:
        Translator(broken)
    assert "\n" not in str(e.value) and str(broken) in str(e.value)


def test_entry_point_and_brief_command(exported, tmp_path):
    """python export.py ckpt=... out=... and the one-liner of the README, as written."""
    out = tmp_path / "exported"
    run = subprocess.run([sys.executable, "export.py", f"ckpt={exported[0]}", f"out={out}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    code = ("from seq2seq.runtime import Translator; "
            f"print(Translator({str(out)!r}).translate(['Ein Hund läuft.'], beam=5))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("['") and run.stdout.strip().endswith("']")
    bad = subprocess.run([sys.executable, "export.py", f"ckpt={tmp_path / 'none.ckpt'}",
                          f"out={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ")
    assert len(bad.stderr.strip().splitlines()) == 1
