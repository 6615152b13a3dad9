"""glibc allocator settings for RNN training loops.

An RNN step allocates and frees the same large buffers thousands of times; by default glibc
returns them to the OS and maps them again every time. Keeping them (the equivalent of
MALLOC_MMAP_THRESHOLD_=32M MALLOC_TRIM_THRESHOLD_=16G MALLOC_TOP_PAD_=1G) makes CPU training
faster at no memory cost (experiments/README.md). Environment variables the user set win;
SEQ2SEQ_MALLOC_TUNING=0 leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": (M_MMAP_THRESHOLD, 32 << 20),
    "MALLOC_TRIM_THRESHOLD_": (M_TRIM_THRESHOLD, 16 << 30),
    "MALLOC_TOP_PAD_": (M_TOP_PAD, 1 << 30),
}


def tune_glibc_malloc() -> bool:
    """Apply the settings with mallopt(3); False where glibc is not the allocator."""
    if os.environ.get("SEQ2SEQ_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = True
    for env, (param, value) in SETTINGS.items():
        if env not in os.environ:
            ok &= bool(mallopt(param, min(value, 2**31 - 1)))
    return ok


# oneDNN primitives kept for reuse; oneDNN's default is 1,024
ONEDNN_PRIMITIVE_CACHE = 16


def limit_onednn_cache() -> None:
    """Keep at most 16 oneDNN primitives (ONEDNN_PRIMITIVE_CACHE_CAPACITY; a value the user set
    wins). bf16 matrix products on a CPU run through oneDNN, which builds a primitive, with its
    own buffers, for every new shape: token-budget batches bring new shapes all the time, and the
    default cache of 1,024 kept 310 MiB more after 40 steps of the reference model in bf16, for
    4% less time than 16 (experiments/README.md). oneDNN reads the variable when it first runs,
    so call this before any bf16 work."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_PRIMITIVE_CACHE))
