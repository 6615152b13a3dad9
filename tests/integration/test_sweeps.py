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
    main, _, budget = md.partition("## The same budget")
    rows = [line for line in main.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 3  # header + 2 runs
    budget_rows = [line for line in budget.splitlines()
                   if line.startswith("| ") and "---" not in line]
    assert len(budget_rows) == 3  # both runs logged val/minutes
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


def _set_clock(run_dir, minutes: list[float], bleu: list[float]) -> None:
    """Rewrite a run's logged validations: val/minutes and val/bleu, in order."""
    import csv

    path = run_dir / "csv" / "metrics.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    vals = [r for r in rows if r.get("val/bleu")]
    assert len(vals) == len(minutes)
    for r, m, b in zip(vals, minutes, bleu, strict=True):
        r["val/minutes"], r["val/bleu"] = str(m), str(b)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


def test_report_compares_runs_at_the_same_wall_clock_budget(tiny_run, tmp_path):
    """`report.py --budget 5,10,30`: the best validation BLEU each run had reached within
    each budget, from the val/minutes every validation logs; runs without it are left out."""
    from seq2seq.report import budget_table, load_runs, parse_budgets, write_report

    run_dir = tiny_run[0]
    for name, minutes, bleu in (("fast", [4.0, 8.0], [20.0, 25.5]),
                                ("slow", [9.0, 40.0], [10.0, 31.25])):
        shutil.copytree(run_dir, tmp_path / "SWEEP" / name)
        _set_clock(tmp_path / "SWEEP" / name, minutes, bleu)
    shutil.copytree(run_dir, tmp_path / "SWEEP" / "old")  # logged before val/minutes existed
    old = tmp_path / "SWEEP" / "old" / "csv" / "metrics.csv"
    lines = old.read_text().splitlines()
    col = lines[0].split(",").index("val/minutes")
    old.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != col)
                             for line in lines) + "\n")
    runs = load_runs(tmp_path / "SWEEP")
    by_name = {r.path.name: r for r in runs}
    assert by_name["fast"].val_clock == [(4.0, 20.0), (8.0, 25.5)]
    assert by_name["old"].val_clock == [] and len(by_name["old"].val_curve) == 2

    rows = budget_table(runs, parse_budgets("10,5,30"), tmp_path / "SWEEP").splitlines()
    assert "| 5 min | 10 min | 30 min |" in rows[0]
    assert len(rows) == 4  # header, rule, fast and slow: not old
    fast = next(r for r in rows if r.startswith("| fast"))
    slow = next(r for r in rows if r.startswith("| slow"))
    assert fast.endswith("| 20.00 | 25.50 | 25.50 | 25.50 (8.0) | 8.0 |")
    assert slow.endswith("| - | 10.00 | 10.00 | 31.25 (40.0) | 40.0 |")

    report = write_report(tmp_path / "SWEEP", budgets="5,10,30").read_text()
    assert "## The same budget" in report and "| fast" in report
    for bad in ("ten", "0,10", ""):
        with pytest.raises(ValueError, match="--budget"):
            parse_budgets(bad)


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
