"""A DDP run ends cleanly: every rank destroys its process group before the interpreter shuts
down.

A gloo process group left alive keeps worker threads that can free a finished collective's
tensors while the interpreter is shutting down; the rank then aborts ("terminate called without
an active exception", exit code -6) after it has trained, tested and written its translations,
and the launcher reports the run as failed. That happens in only some runs (a race), so the test
checks its cause, present in every run: what is still alive on each rank at exit."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import tiny_overrides
from tests.integration.test_cli import run

# Imported by every Python process of the run (the launcher and the rank it starts), through
# PYTHONPATH. Registered at start-up, the handler runs after every other exit handler, just
# before the interpreter shuts down.
EXIT_PROBE = '''
import atexit, json, os, sys


def _report_what_is_alive():
    dist = sys.modules.get("torch.distributed")
    threads = sorted(open(f"/proc/self/task/{t}/comm").read().strip()
                     for t in os.listdir("/proc/self/task"))
    report = {"pid": os.getpid(), "threads": threads,
              "process_group": bool(dist and dist.is_available() and dist.is_initialized())}
    with open(os.path.join(os.environ["EXIT_PROBE_DIR"], f"{os.getpid()}.json"), "w") as f:
        json.dump(report, f)


atexit.register(_report_what_is_alive)
'''
# names torch gives the threads of a gloo process group and of its TCP store
DISTRIBUTED_THREAD = re.compile(r"gloo|tcpstore|c10d")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names in /proc")
def test_each_rank_exits_with_no_process_group_or_gloo_thread_alive(tmp_path, data_root):
    probe, reports = tmp_path / "probe", tmp_path / "at_exit"
    probe.mkdir()
    reports.mkdir()
    (probe / "sitecustomize.py").write_text(EXIT_PROBE)
    # the default loggers (CSV and TensorBoard), as a user's run has them
    overrides = [o for o in tiny_overrides(tmp_path, data_root, n=100) if o != "logger=csv"]
    proc = run([str(ROOT / "train.py"), *overrides, "trainer.devices=2", "trainer.max_steps=4",
                "trainer.limit_val_batches=1", f"hydra.run.dir={tmp_path}/RUN"],
               cwd=tmp_path, timeout=300,
               env={"PYTHONPATH": f"{probe}{os.pathsep}{ROOT}", "EXIT_PROBE_DIR": str(reports)})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "terminate called" not in output and "terminated with code" not in output
    assert (tmp_path / "RUN" / "translations" / "test.hyp.txt").is_file()

    at_exit = [json.loads(p.read_text()) for p in sorted(reports.glob("*.json"))]
    assert len(at_exit) == 2, at_exit  # the launcher (rank 0) and the rank it started
    for report in at_exit:
        assert not report["process_group"], report
        assert not [t for t in report["threads"] if DISTRIBUTED_THREAD.search(t)], report
