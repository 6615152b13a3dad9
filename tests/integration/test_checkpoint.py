"""Checkpoints: self-describing, safe to load, and giving identical outputs after a round trip."""

from pathlib import Path

import pytest
import torch

from experiments.average import main as average_main
from seq2seq.checkpoint import CheckpointError, average_checkpoints, load_module
from seq2seq.translation import translate_lines
from tests.conftest import MAX_TOKENS

SENTENCES = ["Ein Mann fährt Fahrrad.", "", "Zwei Hunde spielen im Schnee."]


def test_training_writes_last_and_best_checkpoints(tiny_run):
    run_dir, metrics, _ = tiny_run
    ckpts = {p.name for p in (run_dir / "checkpoints").glob("*.ckpt")}
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    assert "val/bleu" in metrics and "test/bleu" in metrics
    hyp = (run_dir / "translations" / "test.hyp.txt").read_text().splitlines()
    assert len(hyp) == 40


def test_checkpoint_loads_with_weights_only(tiny_run):
    ckpt = torch.load(tiny_run[0] / "checkpoints" / "last.ckpt", weights_only=True)
    assert set(ckpt["tokenizers"]) == {"src", "tgt"}
    assert ckpt["hyper_parameters"]["config"]["model"]["encoder"]["cell"] == "gru"


def test_checkpoint_and_results_record_direction_code_and_libraries(tiny_run):
    """What a run was trained on and with: the direction and data.max_len, the git commit (with
    a dirty flag) and the versions of torch, lightning and sentencepiece."""
    import json
    import subprocess

    import lightning
    import sentencepiece

    run_dir = tiny_run[0]
    config = torch.load(run_dir / "checkpoints" / "last.ckpt",
                        weights_only=True)["hyper_parameters"]["config"]
    assert config["data"] == {"max_len": 100, "src": "train.de", "tgt": "train.en"}
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["config"]["src_lang"], results["config"]["tgt_lang"]) == ("train.de",
                                                                              "train.en")
    for record in (config["provenance"], results["provenance"]):
        assert record["torch"] == torch.__version__.split("+")[0] or \
            record["torch"] == torch.__version__
        assert record["lightning"] == lightning.__version__
        assert record["sentencepiece"] == sentencepiece.__version__
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
        assert record["git_commit"] == (head or "unknown")
        assert record["git_dirty"] in (True, False) if head else record["git_dirty"] == "unknown"


def test_provenance_outside_a_git_checkout_is_unknown(monkeypatch, tmp_path):
    import seq2seq.provenance as provenance

    monkeypatch.setattr(provenance, "ROOT", tmp_path)  # not a git checkout
    record = provenance.provenance()
    assert record["git_commit"] == record["git_dirty"] == "unknown"
    assert record["torch"] != "unknown"
    assert "code unknown, python" in provenance.describe(record)


def test_a_checkpoint_without_newer_config_keys_still_loads(tiny_run, tmp_path):
    """Search options and sections added later take their conf/train.yaml values; a
    scheduled-sampling key its schedule does not read is dropped."""
    path = tiny_run[0] / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=True)
    config = ckpt["hyper_parameters"]["config"]
    for key in ("nbest", "sample", "temperature", "top_k", "top_p", "seed"):
        del config["decode"][key]
    del config["monitor"], config["data"], config["provenance"], config["seed"]
    del config["model"]["init"], config["model"]["emb_init_std"]
    del config["model"]["decoder"]["bridge"], config["optim"]["fused"]
    config["scheduled_sampling"].update(c=0.0, eps_min=0.0)
    torch.save(ckpt, tmp_path / "old.ckpt")
    old = load_module(tmp_path / "old.ckpt")
    assert old.config["decode"]["nbest"] == 1 and old.config["decode"]["sample"] is False
    assert old.config["monitor"]["metric"] == "val/bleu" and old.config["model"]["init"]
    assert old.config["model"]["decoder"]["bridge"] is True and "fused" in old.config["optim"]
    assert (translate_lines(old, SENTENCES, max_tokens=MAX_TOKENS)
            == translate_lines(load_module(path), SENTENCES, max_tokens=MAX_TOKENS))


def test_a_checkpoint_whose_config_cannot_build_a_model_is_refused_clearly(tiny_run, tmp_path):
    ckpt = torch.load(tiny_run[0] / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["config"]["model"]["decoder"]["cell"] = "rnn"
    torch.save(ckpt, tmp_path / "odd.ckpt")
    with pytest.raises(CheckpointError, match=r"odd\.ckpt: its config cannot build a model"):
        load_module(tmp_path / "odd.ckpt")


def test_last_checkpoint_reloads_the_trained_model_with_identical_outputs(tiny_training):
    """last.ckpt gives back the model training ended with, as it was in memory: the same
    weights, the same SentencePiece models, the same logits and translations."""
    run_dir, _, _, trained = tiny_training
    reloaded = load_module(run_dir / "checkpoints" / "last.ckpt")
    weights = reloaded.state_dict()
    assert weights.keys() == trained.state_dict().keys()
    for name, value in trained.state_dict().items():
        assert torch.equal(weights[name], value), name
    for side in ("src_tokenizer", "tgt_tokenizer"):
        assert getattr(reloaded, side).model_proto == getattr(trained, side).model_proto
    torch.manual_seed(0)
    src = torch.randint(4, 300, (2, 7))
    lengths = torch.tensor([7, 5])
    mask = torch.arange(7)[None] < lengths[:, None]
    tgt = torch.randint(4, 300, (2, 6))
    with torch.no_grad():
        torch.testing.assert_close(reloaded.model(src, lengths, mask, tgt)[0],
                                   trained.model(src, lengths, mask, tgt)[0], rtol=0, atol=0)
    out = translate_lines(reloaded, SENTENCES, max_tokens=MAX_TOKENS)
    assert out == translate_lines(trained, SENTENCES, max_tokens=MAX_TOKENS)
    assert len(out) == 3 and out[0] and out[1] == ""


class Evil:
    def __reduce__(self):
        return (print, ("EVIL CODE RAN",))


def test_checkpoint_carrying_a_pickled_object_is_refused(tiny_run, tmp_path, capsys):
    ckpt = torch.load(tiny_run[0] / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["hyper_parameters"]["config"]["evil"] = Evil()
    torch.save(ckpt, tmp_path / "evil.ckpt")
    capsys.readouterr()
    try:
        load_module(tmp_path / "evil.ckpt")
        raise AssertionError("an unsafe checkpoint was loaded")
    except CheckpointError as e:
        assert "evil.ckpt" in str(e) and "refused" in str(e)
    assert "EVIL CODE RAN" not in capsys.readouterr().out


def test_truncated_checkpoint_is_reported(tiny_run, tmp_path):
    data = (tiny_run[0] / "checkpoints" / "last.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 3])
    try:
        load_module(tmp_path / "cut.ckpt")
        raise AssertionError("a truncated checkpoint was loaded")
    except CheckpointError as e:
        assert "cut.ckpt" in str(e)


def test_unrelated_checkpoint_is_reported(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, tmp_path / "other.ckpt")
    try:
        load_module(tmp_path / "other.ckpt")
        raise AssertionError("an unrelated checkpoint was loaded")
    except CheckpointError as e:
        assert "other.ckpt" in str(e) and "not a seq2seq checkpoint" in str(e)


def _shifted_copy(src: Path, dst: Path, shift: float) -> None:
    """A copy of checkpoint `src` with every floating-point weight increased by `shift`."""
    ckpt = torch.load(src, weights_only=True)
    ckpt["state_dict"] = {k: v + shift if v.is_floating_point() else v
                          for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, dst)


def test_averaged_checkpoint_holds_the_mean_weights_and_translates(tiny_run, tmp_path):
    run_dir, _, _ = tiny_run
    last = run_dir / "checkpoints" / "last.ckpt"
    _shifted_copy(last, tmp_path / "plus1.ckpt", 1.0)
    _shifted_copy(last, tmp_path / "plus2.ckpt", 2.0)
    out = tmp_path / "avg.ckpt"
    average_main([str(last), str(tmp_path / "plus1.ckpt"), str(tmp_path / "plus2.ckpt"),
                  "-o", str(out)])
    original = load_module(last).state_dict()
    averaged = load_module(out)
    for k, v in averaged.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, original[k] + 1.0)
    ckpt = torch.load(out, weights_only=True)
    assert "optimizer_states" not in ckpt and len(ckpt["averaged_from"]) == 3
    hyps = translate_lines(averaged, ["Ein Hund läuft.", "Zwei Männer."], max_tokens=MAX_TOKENS)
    assert len(hyps) == 2 and all(isinstance(h, str) for h in hyps)


def test_averaging_checkpoints_of_different_models_is_refused(tiny_run, tmp_path):
    run_dir, _, _ = tiny_run
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["hyper_parameters"]["config"]["model"]["emb_size"] = 64
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match=r"other\.ckpt: another model"):
        average_checkpoints([last, tmp_path / "other.ckpt"])
    with pytest.raises(SystemExit):
        average_main([str(last), "-o", str(last)])  # would overwrite an input
