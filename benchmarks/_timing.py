"""Interleaved timing shared by the benchmarks that compare models: each round runs every model once, in turn.

Not a benchmark itself (no ``main``). Timing the candidates alternately in one process makes a change in machine
load hit all of them alike; medians drop the outliers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def interleaved_ms(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median milliseconds of each call over ``rounds`` rounds, after one untimed warm-up call each."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}
