"""Every mistake on a command line is one `error:` line naming the option, exit status 2,
before any work: no data prepared, no run dir or cache left behind. A table of mistakes walks
through each command in-process (argv patched), and one per command runs as a real process.
An option added later joins the table."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq import cli
from tests.conftest import ROOT

LEGACY = ROOT / "tests" / "fixtures" / "legacy"
CKPT, EXPORT = LEGACY / "lstm_bahdanau.ckpt", LEGACY / "lstm_bahdanau_export"

# (command, arguments, text the error line must hold: the option's name); {tmp} is the test's
# folder, where a file `afile` and a folder `adir` exist
TABLE = [
    # Hydra's own: unknown keys, group options, malformed overrides
    ("train", ["trainer.max_tme=00:00:10:00"], "trainer.max_tme"),
    ("train", ["model=lstm_bahdnau"], "model/lstm_bahdnau"),
    ("train", ["model.encoder.hidden_size=[1"], "model.encoder.hidden_size"),
    ("train", ["-m", "model=gru_bahdanau,lstm_bahdnau"], "model/lstm_bahdnau"),
    # values of the wrong type
    ("train", ["trainer.max_steps=abc"], "trainer.max_steps"),
    ("train", ["trainer.enable_progress_bar=3"], "trainer.enable_progress_bar"),
    ("train", ["data.vocab_size=many"], "data.vocab_size"),
    # options a model's constructor refuses, or that no model takes
    ("train", ["model=transformer", "model.encoder.num_heads=3"], "model.encoder.num_heads"),
    ("train", ["+model.encoder.foo=1"], "model.encoder.foo"),
    ("train", ["model.decoder.hidden_size=0"], "model.decoder.hidden_size"),
    ("train", ["model.encoder.dropout=1.5"], "model.encoder.dropout"),
    ("train", ["model.encoder.cell=rnn"], "model.encoder.cell"),
    # the module's sections
    ("train", ["optim.lr=-1"], "optim.lr"),
    ("train", ["optim.schedule=linear"], "optim.schedule"),
    ("train", ["loss.label_smoothing=2"], "loss.label_smoothing"),
    ("train", ["decode.beam=0"], "decode.beam"),
    ("train", ["scheduled_sampling=linear", "scheduled_sampling.k=abc"], "scheduled_sampling.k"),
    ("train", ["scheduled_sampling=linear", "+scheduled_sampling.q=1"], "scheduled_sampling.q"),
    ("train", ["optim.fit_to_time=true"], "optim.fit_to_time"),
    # a combination a callback refuses; values Lightning refuses
    ("train", ["callbacks=schedule_to_time", "trainer.max_time=00:00:01:00"], "optim.schedule"),
    ("train", ["trainer.max_time=abc"], "trainer.max_time"),
    ("train", ["trainer.val_check_interval=-1"], "trainer.val_check_interval"),
    ("train", ["trainer.precision=17"], "trainer.precision"),
    # data options
    ("train", ["data.src_lang=xx"], "data.src_lang"),
    ("train", ["data.test_sets=[test_2099]"], "data.test_sets"),
    # outputs that exist as the wrong kind of thing
    ("train", ["run_dir={tmp}/afile"], "run_dir"),
    ("train", ["hydra.run.dir={tmp}/afile"], "hydra.run.dir"),
    ("train", ["data.cache_dir={tmp}/afile"], "data.cache_dir"),
    # translate.py
    ("translate", [], "ckpt"),
    ("translate", [f"ckpt={CKPT}", "beems=3"], "beems"),
    ("translate", [f"ckpt={CKPT}", "beam=0"], "beam"),
    ("translate", [f"ckpt={CKPT}", "sample=true", "temperature=0"], "temperature"),
    ("translate", [f"ckpt={CKPT}", "max_tokens=lots"], "max_tokens"),
    ("translate", [f"ckpt={CKPT}", "out={tmp}/adir"], "out"),
    ("translate", ["ckpt={tmp}/missing.ckpt"], "missing.ckpt"),
    # evaluate.py
    ("evaluate", [], "ckpt"),
    ("evaluate", [f"ckpt={CKPT}", "bem=5"], "bem"),
    ("evaluate", [f"ckpt={CKPT}", "beam=-1"], "beam"),
    ("evaluate", [f"ckpt={CKPT}", "test_sets=[test_2099]"], "test_sets"),
    ("evaluate", [f"ckpt={CKPT}", "src=x.de"], "src="),
    ("evaluate", [f"ckpt={CKPT}", "out={tmp}/adir"], "out"),
    # export.py
    ("export", [f"ckpt={CKPT}"], "out"),
    ("export", [f"ckpt={CKPT}", "out={tmp}/e", "opset=new"], "opset"),
    ("export", [f"ckpt={CKPT}", "out={tmp}/e", "atol=small"], "atol"),
    ("export", [f"ckpt={CKPT}", "out={tmp}/afile"], "out"),
    # serve.py
    ("serve", [f"model={EXPORT}", "port=http"], "port"),
    ("serve", [f"model={EXPORT}", "limits.max_texts=all"], "limits.max_texts"),
    ("serve", ["model_dir=exp/"], "model_dir"),
    ("serve", [f"model={EXPORT}", "prot=8080"], "prot"),
]
SCRIPTS = {"train": "train.py", "translate": "translate.py", "evaluate": "evaluate.py",
           "export": "export.py", "serve": "serve.py"}


@pytest.fixture
def place(tmp_path, monkeypatch, data_root):
    """A working folder holding `afile` and `adir`, with the data and the cache elsewhere. A
    mistake that slipped through would start work: the work's first steps fail the test."""
    import seq2seq.pipeline

    def work(*args, **kwargs):
        raise AssertionError("the mistake was not caught: data preparation began")

    monkeypatch.setattr(seq2seq.pipeline, "build", work)
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "adir").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEQ2SEQ_DATA_DIR", str(data_root))
    monkeypatch.setenv("SEQ2SEQ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level  # Hydra configures logging in-process
    yield tmp_path
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(("command", "args", "named"), TABLE,
                         ids=[f"{c}:{' '.join(a)}" for c, a, _ in TABLE])
def test_a_mistake_is_one_error_line_before_any_work(place, monkeypatch, capsys, command,
                                                     args, named):
    args = [a.replace("{tmp}", str(place)) for a in args]
    monkeypatch.setattr(sys, "argv", [SCRIPTS[command], *args])
    with pytest.raises(SystemExit) as stop:
        getattr(cli, f"{command}_main")()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert named in errors[0], errors[0]
    left = sorted(p.name for p in place.iterdir())
    assert left == ["adir", "afile"], f"left behind: {left}"


@pytest.mark.slow
@pytest.mark.parametrize(("command", "args", "named"), [
    ("train", ["model=transformer", "model.encoder.num_heads=3"], "model.encoder.num_heads"),
    ("translate", [f"ckpt={CKPT}", "beam=0"], "beam"),
    ("evaluate", [f"ckpt={CKPT}", "test_sets=[test_2099]"], "test_sets"),
    ("export", [f"ckpt={CKPT}", "opset=new", "out=e"], "opset"),
    ("serve", [f"model={EXPORT}", "port=http"], "port"),
])
def test_each_command_as_a_process(tmp_path, data_root, command, args, named):
    run = subprocess.run([sys.executable, str(ROOT / SCRIPTS[command]), *args], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "SEQ2SEQ_DATA_DIR": str(data_root),
                              "SEQ2SEQ_CACHE_DIR": str(tmp_path / "cache"),
                              "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"})
    assert run.returncode == 2, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and named in lines[0], lines
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_the_readme_commands_of_this_rule(place, monkeypatch, capsys):
    """train.py model=transformer model.encoder.num_heads=3 prepares nothing: no SentencePiece
    model, no binarized data, no run dir."""
    monkeypatch.setattr(sys, "argv", ["train.py", "model=transformer",
                                      "model.encoder.num_heads=3"])
    with pytest.raises(SystemExit):
        cli.train_main()
    assert not Path(place / "cache").exists() and not Path(place / "outputs").exists()
