"""Halo (overlap) and chunk-size arithmetic. A block's output is exact when the halo covers every operator's
reach, and native pixels never straddle block edges when chunk and halo are multiples of ``align``."""

from __future__ import annotations

import math


class ChunkError(ValueError):
    """The chunk size cannot hold the halo."""


def round_up(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def required_halo(predictor_reach: int | tuple[int, ...], factors: tuple[int, ...], fill_iters: int = 2,
                  smooth_iters: int | None = None, detail: bool = True) -> int:
    """Grid pixels of context each block needs, counted per band at its native resolution and maximised over
    bands (not the sum of the maxima): the predictor's reach for band b (int: the same for all bands) plus the
    consistency layer's reach into the prediction (2 native pixels per smooth step), or the consistency and
    detail layers' reach into the raw input (their bicubic steps and the NaN fill), whichever is larger;
    rounded up to the alignment."""
    from .block import input_reach, post_reach
    from .resample import SMOOTH_ITERS

    smooth_iters = SMOOTH_ITERS if smooth_iters is None else smooth_iters
    per = predictor_reach if isinstance(predictor_reach, tuple) else (int(predictor_reach),) * len(factors)
    reach = max(max(r + post_reach(f, smooth_iters), input_reach(f, fill_iters, smooth_iters, detail))
                for r, f in zip(per, factors, strict=True))
    return round_up(reach, math.lcm(*factors))


def plan_chunks(n: int, chunk: int, align: int, minimum: int) -> tuple[int, ...]:
    """Split ``n`` grid pixels into chunks of at most ``chunk`` (rounded up to a multiple of ``align``), as equal
    as a regular grid allows: k = ceil(n / chunk) chunks, the first k - 1 of ceil(n / k) rounded up to ``align``
    (a store's chunks are equal but the last), the last the rest. Equal chunks keep every worker busy to the end
    and no short rest is merged into a chunk over the budget (10980 px at 840, halo 108: 13 x 786 + 762, not
    12 x 840 + 900). Chunks shorter than ``minimum`` (dask's map_overlap needs chunks >= the halo) fall back to
    full-size chunks with a short last one merged into its neighbour."""
    if n % align:
        raise ValueError(f"grid size {n} is not a multiple of the alignment {align}")
    chunk = max(round_up(chunk, align), align)
    k = math.ceil(n / chunk)
    base = round_up(math.ceil(n / k), align)  # <= chunk; (k - 1) * base < n, so the last chunk is not empty
    sizes = [base] * (k - 1) + [n - base * (k - 1)]
    if k > 1 and min(sizes) < minimum:
        sizes = list(full_chunks(n, chunk, minimum))
    if len(sizes) > 1 and min(sizes) < minimum:
        raise ChunkError(f"--chunk {chunk} is smaller than the halo of {minimum} pixels this model and these bands "
                         f"need: use --chunk {round_up(minimum, align)} or more")
    return tuple(sizes)


def full_chunks(n: int, chunk: int, minimum: int) -> tuple[int, ...]:
    """Chunks of ``chunk`` and the rest, a rest shorter than ``minimum`` merged into the last (``plan_chunks``
    before equal chunks, and its fallback)."""
    sizes = [chunk] * (n // chunk)
    rest = n - sum(sizes)
    if rest:
        if sizes and rest < minimum:
            sizes[-1] += rest
        else:
            sizes.append(rest)
    return tuple(sizes)


def check_chunks(n: int, sizes: tuple[int, ...], align: int, minimum: int) -> None:
    """A recorded chunk grid (a store's ``chunk_input``) still fits: it covers ``n``, every chunk but the last is
    aligned and equal to the first, and every chunk holds the halo (or there is only one)."""
    ok = (sum(sizes) == n and all(s > 0 and s % align == 0 for s in sizes)
          and all(s == sizes[0] for s in sizes[:-1]) and (len(sizes) == 1 or min(sizes) >= minimum))
    if not ok:
        raise ChunkError(f"the recorded chunk grid {list(sizes)} does not fit {n} grid pixels with a halo of "
                         f"{minimum} (multiples of {align}): this store cannot be continued; pass --overwrite")
