"""The pip extras (pyproject.toml) and what each command says when its extra is missing: the
runtime installs without torch, and the CLIs of a runtime-only install answer with the pip
command instead of a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.extras import EXTRAS, MissingExtra, missing, require

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
HEAVY = {"torch", "lightning", "hydra-core", "omegaconf", "torchmetrics", "sacrebleu", "wandb",
         "tensorboard", "matplotlib"}
DISTRIBUTION = {"hydra": "hydra-core"}  # import name -> distribution name, where they differ


def closure(extras: str) -> dict[str, str]:
    """name -> requirement of everything `pip install seq2seq[extras]` asks for (the base
    dependencies and the extras, self-references followed)."""
    out: dict[str, str] = {}
    todo, seen = [*extras.split(",")], set()

    def add(requirement: str) -> None:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
        if name == "seq2seq":
            todo.extend(re.search(r"\[(.*)\]", requirement).group(1).split(","))
        else:
            out[name] = requirement

    for requirement in PROJECT["dependencies"]:
        add(requirement)
    while todo:
        extra = todo.pop().strip()
        if extra and extra not in seen:
            seen.add(extra)
            for requirement in PROJECT["optional-dependencies"][extra]:
                add(requirement)
    return out


@pytest.mark.parametrize("extras, allowed", [
    ("runtime", set()),
    ("runtime,serve", {"hydra-core", "omegaconf"}),  # serve.py model=DIR reads its config
])
def test_the_runtime_installs_without_torch(extras, allowed):
    got = closure(extras)
    assert {"numpy", "sentencepiece", "onnxruntime"} <= set(got)
    assert HEAVY & set(got) == allowed, got


def test_train_keeps_the_torch_range_and_dev_holds_every_extra():
    assert closure("train")["torch"] == "torch>=2.3,<2.14"
    dev = closure("dev")
    for extra in PROJECT["optional-dependencies"]:
        assert set(closure(extra)) <= set(dev), extra


@pytest.mark.parametrize("extra", list(EXTRAS))
def test_each_extra_provides_the_modules_its_commands_check(extra):
    names = {DISTRIBUTION.get(m, m) for m in EXTRAS[extra]}
    assert names <= set(closure(extra)), names - set(closure(extra))
    assert missing(extra) == []  # the dev install has them all


def test_require_names_the_module_and_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert missing("runtime") == ["onnxruntime"]
    with pytest.raises(MissingExtra, match=r"the thing needs onnxruntime, from the 'runtime' "
                                           r"extra: in a checkout, pip install -e "
                                           r"'\.\[runtime\]'"):
        require("runtime", "the thing")


WITHOUT_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['lightning'] = None\n"


@pytest.mark.parametrize("script, args, words", [
    ("train.py", [], "train.py needs torch, lightning, from the 'train' extra"),
    ("translate.py", ["ckpt=x.ckpt"], "translate.py needs torch, lightning"),
    ("export.py", ["ckpt=x.ckpt", "out=o"], "export.py needs torch, lightning, from the 'export' "
                                            "extra"),
    ("serve.py", ["ckpt=x.ckpt"], "serving a checkpoint (ckpt=PATH) needs torch, lightning"),
])
def test_a_runtime_only_install_answers_each_cli_with_one_line(script, args, words):
    code = (WITHOUT_TORCH + f"sys.argv = [{script!r}, *{args!r}]\n"
            f"import runpy; runpy.run_path({script!r}, run_name='__main__')\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("error: ") and words in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "pip install -e '.[" in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("extras", ["runtime", "runtime,serve"])
def test_pip_resolves_the_runtime_without_torch(extras, tmp_path):
    """What pip itself would install for `pip install '.[runtime]'` in a fresh environment
    (--ignore-installed; --dry-run installs nothing)."""
    report = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                          "--ignore-installed", "--report", str(report), f".[{extras}]"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    names = {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
    assert {"numpy", "sentencepiece", "onnxruntime"} <= names
    assert not {"torch", "lightning", "torchmetrics", "wandb", "matplotlib"} & names, names


@pytest.mark.slow
def test_a_wheel_carries_the_configs(tmp_path):
    """`pip wheel .` packs conf/ (through the seq2seq/conf link) as seq2seq/conf/, where
    seq2seq.CONF_DIR finds it outside a checkout."""
    import zipfile

    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                          str(tmp_path), "."], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    (wheel,) = tmp_path.glob("seq2seq-*.whl")
    packed = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("seq2seq/conf/")}
    configs = {f"seq2seq/conf/{p.relative_to(ROOT / 'conf').as_posix()}"
               for p in (ROOT / "conf").rglob("*.yaml")}
    assert configs and packed == configs
    assert "seq2seq/serving/static/index.html" in zipfile.ZipFile(wheel).namelist()
