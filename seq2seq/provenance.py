"""What produced a run: the code's git commit (and whether it had uncommitted changes) and the
versions of the libraries that decide its numbers. Recorded in results.json and every
checkpoint, and printed when training starts."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("torch", "lightning", "sentencepiece", "sacrebleu")
UNKNOWN = "unknown"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def provenance() -> dict:
    """{git_commit, git_dirty, python, <library>: version}; "unknown" where it cannot be told
    (the package is not the top of a git checkout, no git, a library not installed)."""
    top = _git("rev-parse", "--show-toplevel")
    inside = top is not None and Path(top).resolve() == ROOT.resolve()  # not an enclosing repo
    commit = _git("rev-parse", "HEAD") if inside else None
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "git_commit": commit or UNKNOWN,
        "git_dirty": UNKNOWN if status is None else bool(status),
        "python": platform.python_version(),
        **{name: _version(name) for name in LIBRARIES},
    }


def describe(p: dict) -> str:
    """One line for the log: `code 1a2b3c4 (uncommitted changes), torch 2.13.0, ...`."""
    commit = p.get("git_commit", UNKNOWN)
    code = commit[:12] if commit != UNKNOWN else UNKNOWN
    if p.get("git_dirty") is True:
        code += " (uncommitted changes)"
    libs = ", ".join(f"{k} {p.get(k, UNKNOWN)}" for k in ("python", *LIBRARIES))
    return f"code {code}, {libs}"
