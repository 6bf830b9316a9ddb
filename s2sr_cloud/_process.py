"""Process-wide settings made when ``s2sr_cloud`` is imported (in the client and in every dask worker process).

Dask's nanny starts each worker process with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.
pre-spawn-environ``), so that freed memory goes back to the OS at once. Setting it also turns off glibc's dynamic
mmap threshold: every allocation above 128 KiB becomes its own mmap, unmapped when freed, and every tensor of
the chunk function is faulted in afresh. Measured on this 2-core VM (one x4 chunk function in a dask worker, the
quick area, default ensemble, 2 torch threads; ``benchmarks/malloc_check.py``, alternating): 22.2 and 23.9 s, 13.8
and 14.5 s of it in the kernel, under dask's setting; 12.4 and 13.8 s, 0.5 and 0.7 s in the kernel, tuned.
``tune_malloc`` restores glibc's steady state (mmap above 32 MiB, heap top trimmed above 64 MiB: what the dynamic
threshold reaches by itself) where the process runs with dask's value. A value the user chose (any other, or
``MALLOC_MMAP_THRESHOLD_`` set) is left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

DASK_TRIM_THRESHOLD = "65536"  # distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_
MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the dynamic threshold's ceiling
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # as glibc's dynamic rule sets it
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)

tuned = False  # whether tune_malloc changed this process's allocator
_libc: ctypes.CDLL | None = None  # glibc, once tune_malloc has tuned it (release_memory trims through it)


def tune_malloc() -> bool:
    """Undo the cost of dask's ``MALLOC_TRIM_THRESHOLD_`` for this process (glibc only). Returns whether it did."""
    global tuned, _libc
    env = os.environ
    if env.get("MALLOC_TRIM_THRESHOLD_") != DASK_TRIM_THRESHOLD or "MALLOC_MMAP_THRESHOLD_" in env:
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only (musl's mallopt does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    tuned = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _libc = libc if tuned else None
    return tuned


# Resident memory under which ``release_memory`` keeps the freed pages for reuse. Each trim hands the chunk
# function's freed temporaries back and the next band or chunk faults them in again: on 16 chunks of 120 px
# (s2sr-v2 --ensemble 1, one worker) 7.1 s of 40 CPU-s ran in the kernel, 2.9 s without the trims. Below 1 GiB a
# worker holds less than half its chunk budget (``pipeline.graph.WORKER_BUDGET_GIB``); a default-size block
# passes it, and is trimmed as before (its peak is what the trims keep under 3 GiB).
TRIM_ABOVE_BYTES = 1 << 30


def release_memory() -> None:
    """Where ``tune_malloc`` made this process keep freed memory for reuse: hand the free pages back to the OS
    (``malloc_trim``), once per task (and band) rather than per allocation, when the process holds more than
    ``TRIM_ABOVE_BYTES``. Called after each SR task and chunk write, so a worker's resident memory returns to
    at most that between chunks."""
    if _libc is not None and resident_bytes() > TRIM_ABOVE_BYTES:
        _libc.malloc_trim(0)


def resident_bytes() -> int:
    """This process's resident memory now (``/proc/self/statm``; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
