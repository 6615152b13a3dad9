"""Compare runs from their local files: each run dir's results.json (its RunRecord, written at
the end of train.py) and csv/metrics.csv (the CSV logger), into a markdown table and PNG plots."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from seq2seq.plotting import bleu_by_run_figure, save_figure, val_bleu_figure
from seq2seq.record import (
    FILENAME,
    RunRecord,
    format_bleu,
    format_minutes,
    format_number,
    format_params,
    format_rate,
)

COLUMNS = ("run", "direction", "encoder", "decoder", "attention", "ls", "ss", "params",
           "val BLEU", "test BLEU", "test BLEU (lc)", "beam", "beam BLEU", "beam BLEU (lc)",
           "tokens/s", "time")


@dataclass
class Run:
    """One finished run: its folder, record (results.json) and validation BLEU curve."""

    path: Path
    record: RunRecord
    val_curve: list[tuple[int, float]] = field(default_factory=list)  # (step, val/bleu)
    # (wall-clock minutes since training began, val/bleu): runs that log val/minutes
    val_clock: list[tuple[float, float]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The run's dir name and its record's label, as the plots show it."""
        return f"{self.path.name}: {self.record.label}"


def _val_curves(metrics_csv: Path) -> tuple[list[tuple[int, float]], list[tuple[float, float]]]:
    """(step, val/bleu) of every validation, and (val/minutes, val/bleu) of those that logged
    the wall clock."""
    if not metrics_csv.is_file():
        return [], []
    with metrics_csv.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/bleu")]
    return ([(int(r["step"]), float(r["val/bleu"])) for r in rows],
            [(float(r["val/minutes"]), float(r["val/bleu"])) for r in rows
             if r.get("val/minutes")])


def load_runs(root: str | Path) -> list[Run]:
    """Every run under `root` (a sweep dir, or a single run dir) that finished, by path.
    Raises RunRecordError (a ValueError) naming a damaged results.json."""
    runs = []
    for res in sorted(Path(root).rglob(FILENAME)):
        runs.append(Run(res.parent, RunRecord.read(res),
                        *_val_curves(res.parent / "csv" / "metrics.csv")))
    return runs


def _best_val_bleu(r: Run) -> float | None:
    """The best validation BLEU of a run: its monitored best when the monitor is val/bleu,
    else the highest point of its validation curve."""
    if r.record.monitor == "val/bleu":
        return r.record.metrics.get("val/bleu_best", r.record.metrics.get("val/bleu"))
    return max((bleu for _, bleu in r.val_curve), default=None)


def scored_test_sets(runs: list[Run]) -> list[str]:
    """The named test sets the runs were scored on (results.json `test_sets` with a
    test/<name>/bleu), in order of first appearance."""
    names: dict[str, None] = {}
    for r in runs:
        for name in r.record.test_sets:
            if f"test/{name}/bleu" in r.record.metrics:
                names[name] = None
    return list(names)


def table(runs: list[Run], root: str | Path | None = None) -> str:
    """A markdown table, one row per run, best test BLEU first (the headline test set's).
    When the runs hold more than one test set between them, each set's BLEU has a column."""
    def key(r):
        return -(r.record.metrics.get("test/bleu") or -1.0)

    sets = scored_test_sets(runs)
    sets = sets if len(sets) > 1 else []
    at = COLUMNS.index("beam")
    columns = (*COLUMNS[:at], *(f"{name} BLEU" for name in sets), *COLUMNS[at:])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for r in sorted(runs, key=key):
        c, m = r.record.config, r.record.metrics
        name = str(r.path.relative_to(root)) if root else r.path.name
        row = (name, c.direction, c.encoder or "-", c.decoder or "-", c.attention or "-",
               format_number(c.label_smoothing, 1), c.scheduled_sampling or "-",
               format_params(r.record.params), format_bleu(_best_val_bleu(r)),
               format_bleu(m.get("test/bleu")), format_bleu(m.get("test/bleu_lc")),
               *(format_bleu(m.get(f"test/{name}/bleu")) for name in sets),
               format_number(m.get("test/beam"), 0), format_bleu(m.get("test/bleu_beam")),
               format_bleu(m.get("test/bleu_lc_beam")),
               format_rate(r.record.train_tokens_per_s), format_minutes(r.record.seconds))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def parse_budgets(text: str) -> list[float]:
    """`--budget 10,20,40`: minutes, ascending."""
    try:
        budgets = sorted(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--budget {text!r}: give minutes separated by commas, e.g. "
                         "10,20,30,60") from None
    if not budgets or budgets[0] <= 0:
        raise ValueError(f"--budget {text!r}: give positive minutes, e.g. 10,20,30,60")
    return budgets


def best_within(clock: list[tuple[float, float]], minutes: float) -> float | None:
    """The best validation BLEU a run had reached by `minutes` of wall clock (None: it had
    not validated yet, or it logged no clock)."""
    return max((bleu for m, bleu in clock if m <= minutes), default=None)


def budget_table(runs: list[Run], budgets: list[float], root: str | Path | None = None) -> str:
    """A markdown table: per run (those that log val/minutes), the best validation BLEU
    reached within each budget of wall-clock minutes since training began (validations
    included; "-": not validated yet), its best and when, and its last validation's minutes
    (a run that stopped before a budget keeps its best there)."""
    clocked = [r for r in runs if r.val_clock]
    head = ["run", "direction", *(f"{b:g} min" for b in budgets), "best (at minute)",
            "last validation (minute)"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for r in clocked:
        cells = [format_bleu(best_within(r.val_clock, b)) for b in budgets]
        top = max(r.val_clock, key=lambda p: p[1])
        name = str(r.path.relative_to(root)) if root else r.path.name
        lines.append("| " + " | ".join([f"{name}: {r.record.label}", r.record.config.direction,
                                        *cells, f"{format_bleu(top[1])} ({top[0]:.1f})",
                                        f"{r.val_clock[-1][0]:.1f}"]) + " |")
    return "\n".join(lines) + "\n"


def bleu_figure(runs: list[Run]):
    """Test BLEU (cased and lowercased) by run, as a horizontal bar chart -> Figure."""
    runs = sorted(runs, key=lambda r: r.record.metrics.get("test/bleu") or 0.0)
    return bleu_by_run_figure([r.label for r in runs],
                              [r.record.metrics.get("test/bleu") or 0 for r in runs],
                              [r.record.metrics.get("test/bleu_lc") or 0 for r in runs])


def curves_figure(runs: list[Run]):
    """Validation BLEU against training steps, one line per run; beside it, against the wall
    clock when any run logged val/minutes -> Figure."""
    return val_bleu_figure([(r.label, r.val_curve) for r in runs],
                           [(r.label, r.val_clock) for r in runs])


DEFAULT_BUDGETS = "10,20,30,45,60,90,120"


def write_report(root: str | Path, out: str | Path | None = None,
                 budgets: str = DEFAULT_BUDGETS) -> Path:
    """report.md, bleu_by_run.png and val_curves.png in `out` (default: `root`); with the
    best validation BLEU within each budget of minutes (`budgets`) for runs that log
    val/minutes."""
    minutes = parse_budgets(budgets)
    runs = load_runs(root)
    if not runs:
        raise FileNotFoundError(f"no {FILENAME} under {root}: point at a sweep or run dir "
                                "whose training finished")
    out = Path(out or root)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(bleu_figure(runs), out / "bleu_by_run.png")
    save_figure(curves_figure(runs), out / "val_curves.png")
    md = f"# Runs under {root}\n\n{table(runs, root)}\n"
    if any(r.val_clock for r in runs):
        md += ("## The same budget\n\nBest validation BLEU within each budget of wall-clock "
               "minutes since training began (validations included):\n\n"
               f"{budget_table(runs, minutes, root)}\n")
    md += "![test BLEU by run](bleu_by_run.png)\n\n![validation BLEU](val_curves.png)\n"
    (out / "report.md").write_text(md, encoding="utf-8")
    return out / "report.md"
