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


# oneDNN primitives kept for reuse, by oneDNN itself and by ideep (PyTorch's layer over oneDNN,
# which keeps its own cache); both default to 1,024
ONEDNN_PRIMITIVE_CACHE = 16
CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")


def limit_onednn_cache() -> None:
    """Keep at most 16 oneDNN primitives in each of the two caches that hold them:
    ONEDNN_PRIMITIVE_CACHE_CAPACITY (oneDNN's) and LRU_CACHE_CAPACITY (ideep's, in PyTorch); a
    value the user set wins. bf16 matrix products on a CPU run through oneDNN, which builds a
    primitive, with its own buffers, for every new shape: token-budget batches bring new shapes
    all the time. With the defaults of 1,024 the reference model kept 310 MiB more after 40
    steps in bf16; with oneDNN's cache at 16, ideep's still kept 246 MiB more after 60 steps of
    the quick recipe's model at the same speed (the reference model trained about 10% faster
    with it, one run each; experiments/README.md). The caches read the variables when they
    first run, so call this before any bf16 work."""
    for name in CACHE_VARIABLES:
        os.environ.setdefault(name, str(ONEDNN_PRIMITIVE_CACHE))
