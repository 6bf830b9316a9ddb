"""GDAL settings captured from the environment and carried into every read task."""

import pytest

from s2sr_cloud.errors import ConfigError
from s2sr_cloud.io.env import captured_settings


def test_gdal_cachemax_from_the_environment_is_an_integer(monkeypatch):
    """rasterio.Env refuses GDAL_CACHEMAX as a string ("an integer is required" on every read task)."""
    import rasterio

    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    params, _ = captured_settings()
    assert params["GDAL_CACHEMAX"] == 64
    with rasterio.Env(**params):
        pass
    monkeypatch.setenv("GDAL_CACHEMAX", "5%")
    with pytest.raises(ConfigError, match="GDAL_CACHEMAX='5%'.*whole number"):
        captured_settings()


@pytest.mark.parametrize("var,value", [("S2SR_TORCH_THREADS", "two"), ("S2SR_CHUNK_MEMORY_GIB", "-1"),
                                       ("S2SR_CHUNK_MEMORY_GIB", "2,5"), ("S2SR_WRITE_THREADS", "0")])
def test_bad_tuning_variable_is_one_line_error_before_any_work(var, value, monkeypatch, tmp_path, capsys):
    from s2sr_cloud.cli import main

    monkeypatch.setenv(var, value)
    out = tmp_path / "o.zarr"
    rc = main(["run", "--model", "bicubic", "--bands", "B02,B03,B04", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1, err
    assert f"{var}={value!r}" in lines[0] and "positive" in lines[0]
    assert not out.exists()


_HUGE = """
import s2sr_cloud, torch
x = torch.ones(2 ** 26)  # 256 MiB, touched
print([ln.split()[1] for ln in open("/proc/self/smaps_rollup") if ln.startswith("AnonHugePages")][0])
"""


@pytest.mark.parametrize("preset", [None, "0"])
def test_torch_tensors_get_huge_pages_unless_the_user_says_no(preset):
    """Importing s2sr_cloud turns on torch's huge-page allocation (the forward's page faults cost more than its
    compute on a 2-core VM), before torch's first allocation; THP_MEM_ALLOC_ENABLE=0 set by the user wins."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not mode.exists() or "[never]" in mode.read_text():
        pytest.skip("this kernel offers no transparent huge pages")
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"} | (
        {"THP_MEM_ALLOC_ENABLE": preset} if preset else {})
    kib = int(subprocess.run([sys.executable, "-c", _HUGE], env=env, capture_output=True, text=True,
                             check=True).stdout.strip())
    assert (kib >= 128 * 1024) if preset is None else kib == 0, kib


def test_dask_workers_inherit_the_huge_page_setting(dask_cluster):
    import os

    assert set(dask_cluster.run(lambda: os.environ.get("THP_MEM_ALLOC_ENABLE")).values()) == {"1"}


_MMAPPED = """
import ctypes, sys
if sys.argv[1] == "import":
    import s2sr_cloud  # noqa: F401
import numpy as np


class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
before = libc.mallinfo2().hblkhd
a = np.ones(1 << 20)  # 8 MiB: above the 128 KiB fixed threshold dask's setting leaves, below 32 MiB
print(libc.mallinfo2().hblkhd - before)  # bytes in mmapped chunks (each one faulted in afresh, unmapped when freed)
"""


@pytest.mark.parametrize("case", ["dask", "dask+import", "user+import"])
def test_worker_temporaries_come_from_the_heap_not_fresh_mmaps(case):
    """Under dask's MALLOC_TRIM_THRESHOLD_=65536 every temporary above 128 KiB is its own mmap, faulted in afresh
    and unmapped when freed (the chunk function ran 2x slower in a worker, 14 of its 21 s in the kernel);
    importing s2sr_cloud restores glibc's 32 MiB mmap threshold, so freed memory is reused. A threshold the user
    set is left alone."""
    import ctypes
    import os
    import subprocess
    import sys

    try:
        ctypes.CDLL(None).mallinfo2
    except AttributeError:
        pytest.skip("not glibc >= 2.33")
    env = os.environ | {"MALLOC_TRIM_THRESHOLD_": "65536"}
    if case == "user+import":
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    mapped = int(subprocess.run([sys.executable, "-c", _MMAPPED, "import" if "import" in case else "no"], env=env,
                                capture_output=True, text=True, check=True).stdout.strip())
    assert mapped == 0 if case == "dask+import" else mapped >= 8 << 20, (case, mapped)


def test_dask_workers_run_with_the_mmap_threshold_restored(dask_cluster):
    import dask

    assert dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_") == 65536

    def state():
        import os

        import s2sr_cloud._process as p

        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), p.tuned

    assert set(dask_cluster.run(state).values()) == {("65536", True)}


_RELEASE = """
import numpy as np
import s2sr_cloud._process as p


def rss_mib():
    return int([ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmRSS")][0]) / 1024


keep = []
for i in range(60):  # 60 x 4 MiB temporaries from the heap (below the restored 32 MiB mmap threshold), touched
    keep.append(np.ones(1 << 19))
last = keep.pop()  # the heap's top stays in use, so no automatic trim can hand the rest back
keep.clear()
before = rss_mib()
p.TRIM_ABOVE_BYTES = int(float(sys.argv[1]) * 2**20)
p.release_memory()
print(p.tuned, before, before - rss_mib())
"""


@pytest.mark.parametrize("above", [True, False])
def test_release_memory_hands_freed_heap_pages_back_above_its_floor(above):
    """With the mmap threshold restored, freed temporaries stay in the worker's heap for the next tensor; after
    each SR task and chunk write ``release_memory`` gives their pages back (malloc_trim) when the process holds
    more than ``TRIM_ABOVE_BYTES``, so a worker between chunks holds at most that. Below it they are kept: trimming
    them only had the next band fault them in again (2.5x the kernel time on 16 small chunks)."""
    import os
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"} | {"MALLOC_TRIM_THRESHOLD_": "65536"}
    floor_mib = 100 if above else 1024  # the process holds about 300 MiB
    out = subprocess.run([sys.executable, "-c", "import sys\n" + _RELEASE, str(floor_mib)], env=env,
                         capture_output=True, text=True, check=True)
    tuned, held, freed = out.stdout.split()
    assert tuned == "True" and float(held) > 250, out.stdout
    if above:
        assert float(freed) > 200, out.stdout  # 59 x 4 MiB = 236 MiB were free in the heap
    else:
        assert abs(float(freed)) < 20, out.stdout
