"""Sweeps and their comparison: the hparams_search configs, the report, the notebooks."""

from __future__ import annotations

import json
import shutil

import pytest
from hydra import compose, initialize_config_dir

from tests.conftest import CONF, ROOT
from tests.integration.conftest import tiny_overrides
from tests.integration.test_cli import run


def test_rnn_grid_sweeps_the_design_questions():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=rnn_grid"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params["cell"] == "gru,lstm"
    assert params["model/attention"].split(",") == [
        "none", "bahdanau", "luong_dot", "luong_general", "luong_concat"]
    assert params["loss.label_smoothing"] == "0.0,0.1,0.2"
    assert len(params["scheduled_sampling"].split(",")) == 4
    assert cfg.model.encoder.cell == cfg.model.decoder.cell == "lstm"  # follows `cell`


def test_optuna_config_maximizes_validation_bleu():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=optuna"], return_hydra_config=True)
    assert cfg.hydra.sweeper.direction == "maximize"
    assert cfg.optimized_metric == "val/bleu_best"
    assert "optim.lr" in cfg.hydra.sweeper.params


@pytest.mark.slow
def test_grid_sweep_runs_each_job_in_its_own_dir_and_the_report_compares_them(tmp_path,
                                                                              data_root):
    overrides = [o for o in tiny_overrides(tmp_path, data_root) if not o.startswith(("model=", "model.decoder.hidden_size"))]
    proc = run([str(ROOT / "train.py"), "-m", "hparams_search=rnn_grid", "hydra.sweep.dir=SWEEP",
                *overrides, "model=gru_bahdanau", "model.decoder.hidden_size=64", "cell=gru",
                "model/attention=none,luong_dot", "loss.label_smoothing=0.1",
                "scheduled_sampling=none", "trainer.max_epochs=1"], cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in (tmp_path / "SWEEP").iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    results = [json.loads((j / "results.json").read_text()) for j in jobs]
    assert [r["config"]["attention"] for r in results] == ["none", "luong_dot"]
    assert all(r["name"] == "rnn_grid" and r["config"]["encoder"] == "gru" for r in results)

    report = run([str(ROOT / "experiments" / "report.py"), "SWEEP"], cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "SWEEP" / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 3  # header + 2 runs
    for r in results:
        assert f"{r['metrics']['test/bleu']:.2f}" in md and f"{r['params'] / 1e6:.1f}M" in md
    for png in ("bleu_by_run.png", "val_curves.png"):
        assert (tmp_path / "SWEEP" / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_optuna_sweep_records_the_best_trial(tmp_path, data_root):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    proc = run([str(ROOT / "train.py"), "-m", "hparams_search=optuna", "hydra.sweep.dir=SWEEP",
                "hydra.sweeper.n_trials=2", *tiny_overrides(tmp_path, data_root),
                "trainer.max_epochs=1", "test=false"], cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = (tmp_path / "SWEEP" / "optimization_results.yaml").read_text()
    assert "best_params" in best and "optim.lr" in best and "best_value" in best


def test_report_table_orders_runs_by_test_bleu(tiny_run, tmp_path):
    from seq2seq.report import load_runs, table, write_report

    run_dir, metrics, _ = tiny_run
    for i, bleu in enumerate((1.5, 7.25)):
        shutil.copytree(run_dir, tmp_path / "SWEEP" / str(i))
        res = tmp_path / "SWEEP" / str(i) / "results.json"
        data = json.loads(res.read_text())
        data["metrics"]["test/bleu"] = bleu
        res.write_text(json.dumps(data))
    runs = load_runs(tmp_path / "SWEEP")
    assert len(runs) == 2 and runs[0].val_curve  # the CSV logger's validation BLEU
    rows = table(runs, tmp_path / "SWEEP").splitlines()[2:]
    assert rows[0].startswith("| 1 |") and "7.25" in rows[0] and "1.50" in rows[1]
    assert write_report(tmp_path / "SWEEP").is_file()
    with pytest.raises(FileNotFoundError, match="no results.json"):
        write_report(tmp_path / "nothing")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["attention_explorer", "compare_runs"])
def test_notebooks_run_against_a_tiny_run(name, tiny_run, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    run_dir, _, _ = tiny_run
    monkeypatch.setenv("SEQ2SEQ_CKPT", str(run_dir / "checkpoints" / "last.ckpt"))
    monkeypatch.setenv("SEQ2SEQ_RUNS", str(run_dir))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type in ("display_data", "execute_result") for o in outputs)
