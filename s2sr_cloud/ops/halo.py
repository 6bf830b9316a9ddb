"""Halo (overlap) and chunk-size arithmetic. A block's output is exact when the halo covers every operator's
reach, and native pixels never straddle block edges when chunk and halo are multiples of ``align``."""

from __future__ import annotations

import math


class ChunkError(ValueError):
    """The chunk size cannot hold the halo."""


def round_up(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def required_halo(predictor_reach: int, factors: tuple[int, ...], fill_iters: int, smooth_iters: int) -> int:
    """Grid pixels of context each block needs: the predictor's receptive field, the NaN fill's reach and the
    consistency projection's reach, for the coarsest band, rounded up to the alignment."""
    fmax = max(factors)
    reach = predictor_reach + fmax * fill_iters + 2 * smooth_iters * fmax + fmax
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
