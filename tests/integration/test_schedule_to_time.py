"""callbacks.schedule_to_time: the cosine schedule, and training, end where trainer.max_time
allows, by the run's one clock (seq2seq/clock.py)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from seq2seq.callbacks.schedule_to_time import ScheduleToTime, budget_seconds, planned_end
from seq2seq.clock import RunClock
from seq2seq.data.errors import DataError
from seq2seq.pipeline import _instantiate_all, build, build_trainer, train
from tests.conftest import compose_train
from tests.integration.conftest import tiny_overrides

PEAK, MIN_RATIO = 2e-3, 0.1
# a 100-update cosine schedule (25 warmup) validated every 40 updates
SCHEDULE = ["optim.schedule=cosine", f"optim.lr={PEAK}", "optim.warmup_steps=25",
            f"optim.min_ratio={MIN_RATIO}", "trainer.max_steps=100", "trainer.max_epochs=100",
            "trainer.check_val_every_n_epoch=null", "trainer.val_check_interval=40",
            "trainer.max_time=null", "trainer.num_sanity_val_steps=2",
            "callbacks.early_stopping=null", "callbacks.lr_monitor=null", "test=false"]


class FakeClock(L.Callback):
    """Seconds that pass by the run's events: 1 an update, 5 a validation, 2 the sanity
    check; the run's clock reads them. Listed before ScheduleToTime, so its hooks move the
    clock first. stop_at: an update where the run is stopped, as by an interruption. minutes:
    the val/minutes each validation logged, in seconds."""

    def __init__(self, stop_at: int | None = None, validations: list[float] | None = None):
        self.t, self.validated_at, self.restored, self.stop_at = 0.0, [], None, stop_at
        self.validations = validations  # seconds of each validation in turn (default 5)
        self.minutes: list[float] = []

    def __call__(self) -> float:
        return self.t

    def on_sanity_check_end(self, trainer, module):
        self.t += 2.0

    def on_train_start(self, trainer, module):
        fitter = next(c for c in trainer.callbacks if isinstance(c, ScheduleToTime))
        total = trainer.lr_scheduler_configs[0].scheduler.lr_lambdas[0].total_steps
        self.restored = (fitter.plan, module.clock.elapsed(), total)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.t += 1.0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.stop_at:
            trainer.should_stop = True

    def on_validation_end(self, trainer, module):
        if not trainer.sanity_checking:
            self.minutes.append(float(trainer.callback_metrics["val/minutes"]) * 60)
            costs = self.validations or []
            self.t += costs[len(self.validated_at)] if costs else 5.0
            self.validated_at.append(trainer.global_step)


def _fit(tmp_path, data_root, budget: float, ckpt_path=None, clock=None):
    run_dir = tmp_path / "run"
    cfg = compose_train([*tiny_overrides(tmp_path, data_root), *SCHEDULE,
                         f"run_dir={run_dir}"])
    datamodule, module = build(cfg)
    clock = clock or FakeClock()
    module.clock = RunClock(now=clock)
    fitter = ScheduleToTime({"seconds": budget}, reserve=0.0)
    trainer = build_trainer(cfg, [clock, fitter, *_instantiate_all(cfg.callbacks)], [], module)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, fitter, clock, run_dir


def test_planned_end_is_the_last_update_whose_updates_and_validations_fit():
    every_600 = lambda step: lambda t: t // 600 - step // 600 + (t % 600 != 0)  # noqa: E731
    # 100 s left at 0.1 s an update and 10 s a validation: 1,000 would need 2 validations
    # (600 and 1,000): 90 + 20 > 100; 900 fits exactly (80 + 20)
    assert planned_end(100, 100.0, 0.1, 10.0, every_600(100), last=2400) == 900
    assert planned_end(100, 100.0, 0.1, 10.0, every_600(100), last=800) == 800
    assert planned_end(100, 100.0, 0.1, 0.0, lambda t: 0, last=2400) == 1100
    assert planned_end(100, 1.0, 0.1, 10.0, every_600(100), last=2400) == 100  # stop now


def test_budget_seconds_reads_every_form_of_max_time():
    assert budget_seconds("00:00:19:00") == 19 * 60
    assert budget_seconds({"hours": 1, "minutes": 30}) == 5400
    assert budget_seconds(None) == 0


def test_the_schedule_ends_and_training_stops_where_the_time_runs_out(tmp_path, data_root):
    """100 fake seconds, 1 an update and 5 a validation (the sanity check, 2 s, estimates
    2 s): planned at the end of the warmup (update 25) to end at 94; after the validation at
    40 measured 5 s, at 85 = 40 + 45 updates with the validations at 80 and 85 (85 + 3 x 5 =
    100 s). Training stops at 85, validates there, and the learning rate has reached its floor."""
    trainer, fitter, clock, run_dir = _fit(tmp_path, data_root, budget=100.0)
    assert trainer.global_step == 85
    assert clock.validated_at == [40, 80, 85]
    assert clock.t - 2.0 == pytest.approx(100.0)  # the training time spent: the whole budget
    assert clock.minutes == pytest.approx([40.0, 85.0, 95.0])  # val/minutes, in seconds
    assert fitter.plan["end"] == 85 and fitter.plan["planned"] == 100
    assert fitter.plan["validation_seconds"] == pytest.approx(5.0)
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(PEAK * MIN_RATIO)
    # the checkpoint of the last validation holds the moved end and, once, the time spent
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 85
    assert last["lr_schedulers"][0]["lr_lambdas"][0]["total_steps"] == 85
    state = next(v for k, v in last["callbacks"].items() if k.startswith("ScheduleToTime"))
    assert state["plan"]["end"] == 85 and "elapsed" not in state
    assert last["run_clock"]["seconds"] == pytest.approx(100.0) and "wall_seconds" not in last


def test_a_resumed_run_carries_the_plan_and_the_time_spent(tmp_path, data_root):
    """Stopped at update 40, the checkpoint holds the plan made after the warmup (94) in the
    scheduler and the callback, and the time spent (40 updates and a validation); the resumed
    run starts from them, plans again after its validation at 80, and ends where the
    uninterrupted run did, with the rate at its floor."""
    trainer, fitter, _, run_dir = _fit(tmp_path, data_root, budget=100.0,
                                       clock=FakeClock(stop_at=40))
    assert trainer.global_step == 40 and fitter.plan["end"] == 94
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    trainer, fitter, clock, _ = _fit(tmp_path, data_root, budget=100.0, ckpt_path=str(ckpt))
    plan, elapsed, total = clock.restored
    assert plan["end"] == 94 and total == 94 and elapsed == pytest.approx(45.0)
    assert trainer.global_step == 85 and clock.validated_at == [80, 85]
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(PEAK * MIN_RATIO)


def test_val_minutes_and_the_fitted_schedule_read_one_clock(tmp_path, data_root):
    """The time the schedule is fitted to is the time val/minutes logs. Stopped at 40, the
    run logged 40 s there and its checkpoint holds 45 (the validation's 5 s after); resumed,
    it logs what the uninterrupted run does (85 and 95 s at 80 and 85), and its last
    checkpoint holds one time, 100 s: the whole budget, as the plan counted it."""
    _, _, first, _ = _fit(tmp_path, data_root, budget=100.0, clock=FakeClock(stop_at=40))
    assert first.minutes == pytest.approx([40.0])
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["run_clock"]["seconds"] == pytest.approx(45.0)
    trainer, _, resumed, run_dir = _fit(tmp_path, data_root, budget=100.0, ckpt_path=str(ckpt))
    assert resumed.validated_at == [80, 85]
    assert resumed.minutes == pytest.approx([85.0, 95.0])
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["run_clock"]["seconds"] == pytest.approx(100.0)
    assert trainer.lightning_module.clock.elapsed() == pytest.approx(100.0)


def test_a_checkpoint_with_the_two_old_timings_resumes(tmp_path, data_root):
    """A checkpoint written when the module (`wall_seconds`, from the start of fitting, so
    with the 2 s sanity check) and the callback (`elapsed`, as trainer.max_time counts) each
    kept a time: the run resumes from the callback's 45 s, and ends as the uninterrupted run."""
    _fit(tmp_path, data_root, budget=100.0, clock=FakeClock(stop_at=40))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    old = torch.load(ckpt, weights_only=False)
    seconds = old.pop("run_clock")["seconds"]
    old["wall_seconds"] = seconds + 2.0
    state = next(v for k, v in old["callbacks"].items() if k.startswith("ScheduleToTime"))
    state["elapsed"] = seconds
    torch.save(old, ckpt)
    trainer, _, clock, _ = _fit(tmp_path, data_root, budget=100.0, ckpt_path=str(ckpt))
    plan, elapsed, total = clock.restored
    assert plan["end"] == 94 and total == 94 and elapsed == pytest.approx(45.0)
    assert trainer.global_step == 85 and clock.validated_at == [80, 85]


def test_a_plan_that_ends_at_a_validation_stops_there(tmp_path, data_root):
    """With 92 s, the plan after the validation at 40 ends at 80 (80 updates and two
    validations: 90 s; one more update and its own validation would need 96): training stops
    right after the validation at 80, with no second validation."""
    trainer, fitter, clock, _ = _fit(tmp_path, data_root, budget=92.0)
    assert trainer.global_step == 80 and clock.validated_at == [40, 80]
    assert fitter.plan["end"] == 80


def test_the_plan_training_stopped_at_is_the_one_kept(tmp_path, data_root):
    """Validations of 5, 1 and 0 s: the plan after the one at 80 ends at 91, and the cheap last
    validation leaves time for another update; training has stopped, so the plan stays 91."""
    trainer, fitter, clock, _ = _fit(tmp_path, data_root, budget=100.0,
                                     clock=FakeClock(validations=[5.0, 1.0, 0.0]))
    assert trainer.global_step == 91 and clock.validated_at == [40, 80, 91]
    assert fitter.plan["end"] == 91


@pytest.mark.slow
def test_train_records_the_plan_and_a_budget_that_fits_changes_nothing(tmp_path, data_root):
    """callbacks=schedule_to_time through train(): with an hour for a few seconds of training
    the schedule keeps the trainer's end, and results.json says so."""
    run_dir = tmp_path / "run"
    cfg = compose_train(["callbacks=schedule_to_time", *tiny_overrides(tmp_path, data_root),
                         *SCHEDULE, "trainer.max_steps=30",
                         "trainer.max_time=00:01:00:00", f"run_dir={run_dir}"])
    train(cfg)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["steps"] == 30
    assert results["schedule_to_time"]["end"] == 30 == results["schedule_to_time"]["planned"]


@pytest.mark.parametrize("overrides, words", [
    (["callbacks=schedule_to_time", "trainer.max_time=00:00:10:00",
      "optim.schedule=inverse_sqrt"],
     ["optim.schedule=inverse_sqrt", "optim.schedule=cosine", "callbacks.schedule_to_time=null"]),
    (["callbacks=schedule_to_time", "trainer.max_time=null", "optim.schedule=cosine"],
     ["trainer.max_time", "not set"]),
    (["experiment=multi30k_quick", "optim.fit_to_time=false"],  # the old spelling
     ["optim.fit_to_time is now callbacks.schedule_to_time", "callbacks=schedule_to_time",
      "callbacks.schedule_to_time=null"]),
])
def test_bad_options_name_what_to_change(tmp_path, data_root, overrides, words):
    cfg = compose_train([*tiny_overrides(tmp_path, data_root), f"run_dir={tmp_path}/run",
                         *overrides])
    with pytest.raises(DataError) as e:
        train(cfg)
    assert all(w in str(e.value) for w in words), str(e.value)
    assert not (tmp_path / "run" / "results.json").exists()


def test_the_old_spelling_is_one_error_line(tmp_path):
    """The command experiments/README.md ran before the rename stops at once, before any data
    is read, with one line naming the new spelling."""
    from tests.conftest import ROOT
    from tests.integration.test_cli import run

    proc = run([str(ROOT / "train.py"), "experiment=multi30k_quick", "test_beam=5",
                "optim.fit_to_time=false", f"hydra.run.dir={tmp_path}/RUN"],
               cwd=tmp_path, timeout=120, env={"SEQ2SEQ_DATA_DIR": str(tmp_path / "none")})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: optim.fit_to_time is now callbacks.schedule_to_time"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_two_ranks_stop_together_at_rank_0s_plan(tmp_path, data_root):
    """DDP over gloo, real time: 3,000 updates cannot fit 25 seconds, so the schedule is cut;
    every rank stops at the end rank 0 planned (a rank that stopped alone would leave the
    other waiting in its next all-reduce until the timeout)."""
    from tests.conftest import ROOT
    from tests.integration.test_cli import run

    proc = run([str(ROOT / "train.py"), "callbacks=schedule_to_time",
                *tiny_overrides(tmp_path, data_root), *SCHEDULE,
                "trainer.devices=2", "trainer.max_steps=3000", "trainer.max_epochs=1000",
                "trainer.val_check_interval=200", "trainer.max_time=00:00:00:25",
                "trainer.num_sanity_val_steps=0", f"hydra.run.dir={tmp_path}/RUN"],
               cwd=tmp_path, timeout=600, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "RUN" / "results.json").read_text())
    plan = results["schedule_to_time"]
    assert results["devices"] == 2 and plan["planned"] == 3000
    assert 25 < plan["end"] < 3000 and results["steps"] <= plan["end"]
