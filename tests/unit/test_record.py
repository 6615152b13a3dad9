"""RunRecord (seq2seq/record.py): results.json written and read back, older files read with
defaults, damaged ones named, and the labels and number formats tables of runs show."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from seq2seq.data.errors import DataError
from seq2seq.record import (
    SCHEMA_VERSION,
    RunConfig,
    RunRecord,
    RunRecordError,
    format_bleu,
    format_minutes,
    format_number,
    format_params,
    format_rate,
    run_labels,
)
from tests.conftest import ROOT

# the keys of results.json as train.py wrote them before schema_version, in their order
KEYS = ["name", "config", "overrides", "params", "test_sets", "monitor", "monitor_best",
        "metrics", "epochs", "steps", "train_tokens_per_s", "seconds", "devices", "accelerator",
        "precision", "machine", "provenance"]

# a results.json of a finished run, written before schema_version existed (the shape of
# pipeline._write_results then), without `test_sets`, `precision` and `machine`, as an early
# run's file lacks them, and with a key this version does not know
OLD = {
    "name": "quick",
    "config": {"src_lang": "de", "tgt_lang": "en", "encoder": "bigru", "decoder": "gru",
               "attention": "bahdanau", "label_smoothing": 0.1, "scheduled_sampling": "none",
               "beam": 1},
    "overrides": ["experiment=quick"],
    "params": 12_345_678,
    "monitor": "val/bleu",
    "monitor_best": 34.5678,
    "metrics": {"val/bleu": 34.0, "val/bleu_best": 34.5678, "test/bleu": 35.916,
                "test/bleu_lc": 37.5, "test/beam": 5.0, "test/bleu_beam": 36.2},
    "epochs": 7, "steps": 1158,
    "train_tokens_per_s": 10234.4,
    "seconds": 900.0,
    "devices": 1, "accelerator": "CPUAccelerator",
    "provenance": {"git_commit": "1a2b3c", "git_dirty": False, "python": "3.12.3"},
    "rescored_by": "experiments/rescore.py",
}


def _record(**changes) -> RunRecord:
    config = RunConfig("de", "en", "bigru", "gru", "bahdanau", 0.1, "none", 5)
    fields = {"name": "quick", "config": config, "overrides": ["experiment=quick"],
              "params": 1_000, "test_sets": ["test_2016_flickr", "test_2017_flickr"],
              "monitor": "val/bleu", "monitor_best": 30.0,
              "metrics": {"val/bleu_best": 30.0, "test/bleu": 31.25},
              "epochs": 2, "steps": 100, "train_tokens_per_s": 5000.0, "seconds": 61.5,
              "devices": 1, "accelerator": "CPUAccelerator",
              "precision": {"requested": "auto", "used": "32-true", "cpu": "avx2"},
              "machine": "x86_64, 2 CPUs", "provenance": {"git_commit": "abc"}}
    return RunRecord(**{**fields, **changes})


def test_written_record_reads_back_equal(tmp_path):
    record = _record(schedule_to_time={"end": 30, "planned": 30, "per_update": 0.5})
    path = tmp_path / "run" / "results.json"
    record.write(path)
    assert RunRecord.read(path) == record
    assert not list(path.parent.glob(".results.json.*"))  # the temporary file is renamed


def test_file_keeps_the_keys_it_had_and_adds_schema_version(tmp_path):
    path = tmp_path / "results.json"
    _record().write(path)
    data = json.loads(path.read_text())
    assert list(data) == ["schema_version", *KEYS]  # no schedule_to_time without a plan
    assert data["schema_version"] == SCHEMA_VERSION
    assert list(data["config"]) == list(OLD["config"])
    _record(schedule_to_time={"end": 3}).write(path)
    assert json.loads(path.read_text())["schedule_to_time"] == {"end": 3}


def test_old_results_json_reads_with_defaults(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(OLD, indent=2))
    record = RunRecord.read(path)
    assert record.schema_version == SCHEMA_VERSION  # read as this version
    assert record.params == 12_345_678 and record.steps == 1158
    assert record.config.attention == "bahdanau" and record.config.beam == 1
    assert record.metrics["test/bleu"] == 35.916
    # the keys it lacks take their defaults
    assert record.test_sets == [] and record.headline_test_set == "test"
    assert record.precision == {} and record.machine is None
    assert record.schedule_to_time is None
    # written again, it keeps what it had (the unknown key too) and gains schema_version
    record.write(path)
    again = json.loads(path.read_text())
    assert again["schema_version"] == SCHEMA_VERSION
    assert {k: again[k] for k in OLD} == OLD


def test_a_sparse_or_null_file_reads_with_defaults():
    record = RunRecord.from_dict({"name": "fake", "config": {"encoder": "gru"},
                                  "metrics": None, "monitor": None})
    assert record.metrics == {} and record.monitor == "val/bleu"
    assert record.params is None and record.config.src_lang is None


@pytest.mark.parametrize(("text", "match"), [
    ('{"name": "quick", "metrics": {"test/bl', "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "holds a JSON list"),
    ('{"metrics": [1, 2]}', "metrics is \\[1, 2\\], not an object"),
    ('{"metrics": {"test/bleu": "high"}}', "metrics\\['test/bleu'\\] is not a number"),
    ('{"params": 1.5}', "params is 1.5, not a whole number"),
    ('{"config": {"beam": "five"}}', "config: beam is \"five\""),
    (f'{{"schema_version": {SCHEMA_VERSION + 1}}}', "newer seq2seq"),
])
def test_damaged_file_raises_one_error_naming_it(tmp_path, text, match):
    path = tmp_path / "run" / "results.json"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(RunRecordError, match=match) as e:
        RunRecord.read(path)
    assert str(e.value).startswith(f"{path}: ")
    assert isinstance(e.value, DataError) and isinstance(e.value, ValueError)  # entry points


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(RunRecordError, match=r"run[/\\]results\.json: no such file"):
        RunRecord.read(tmp_path / "run" / "results.json")
    with pytest.raises(RunRecordError, match="cannot be read"):
        RunRecord.read(tmp_path)  # a folder
    (tmp_path / "results.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(RunRecordError, match="cannot be read"):
        RunRecord.read(tmp_path / "results.json")


def test_label_names_the_experiment_parts_and_direction():
    assert _record().label == "quick bigru/gru/bahdanau de-en"
    assert _record().config.direction == "de->en"
    assert _record(name=None, config=RunConfig(encoder="gru")).label == "gru/?/? ?-?"


def test_runs_alike_are_told_apart_by_folder_then_path(tmp_path):
    same, other = _record(), _record(config=RunConfig("de", "en", "lstm", "lstm", "none"))
    dirs = [tmp_path / "a" / "0", tmp_path / "b" / "0", tmp_path / "c"]
    assert run_labels(dirs, [same, same, other]) == [
        f"quick bigru/gru/bahdanau de-en (0) ({dirs[0]})",
        f"quick bigru/gru/bahdanau de-en (0) ({dirs[1]})",
        "quick lstm/lstm/none de-en"]


def test_number_formats():
    assert format_bleu(35.916) == "35.92" and format_bleu(7.25) == "7.25"
    assert format_bleu(None) == "-" and format_bleu(0.0) == "0.00"
    assert format_number(0.1, 1) == "0.1" and format_number(5.0, 0) == "5"
    assert format_params(12_345_678) == "12.3M" and format_params(None) == "-"
    assert format_rate(10234.6) == "10235" and format_rate(None) == "-"
    assert format_minutes(900.0) == "15.0 min" and format_minutes(None) == "-"


def test_headline_figures_leave_out_what_was_not_measured():
    old = RunRecord.from_dict(OLD)
    assert old.headline() == {"val/bleu_best": 34.5678, "test/bleu": 35.916,
                              "test/bleu_lc": 37.5, "test/bleu_beam": 36.2,
                              "params": 12_345_678, "steps": 1158, "seconds": 900.0,
                              "train_tokens_per_s": 10234.4}
    assert RunRecord().headline() == {}


def test_record_imports_neither_lightning_nor_hydra():
    code = ("import sys, seq2seq.record; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'lightning', 'hydra', 'omegaconf', 'torch', 'matplotlib'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
