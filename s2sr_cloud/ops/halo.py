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
    """Split ``n`` grid pixels into chunks of ``chunk`` (a multiple of ``align``) where the last chunk is merged
    into its neighbour if shorter than ``minimum`` (dask's map_overlap needs chunks >= the halo)."""
    if n % align:
        raise ValueError(f"grid size {n} is not a multiple of the alignment {align}")
    chunk = max(round_up(chunk, align), align)
    sizes = [chunk] * (n // chunk)
    rest = n - sum(sizes)
    if rest:
        if sizes and rest < minimum:
            sizes[-1] += rest
        else:
            sizes.append(rest)
    if len(sizes) > 1 and min(sizes) < minimum:
        raise ChunkError(f"--chunk {chunk} is smaller than the halo of {minimum} pixels this model and these bands "
                         f"need: use --chunk {round_up(minimum, align)} or more")
    return tuple(sizes)
