from __future__ import annotations

import numpy as np

START = np.datetime64("2024-01-01T00:00:00", "s")


def hourly(n: int, start: np.datetime64 = START) -> np.ndarray:
    return start + np.arange(n) * np.timedelta64(3600, "s")


def seasonal_counts(n: int, seed: int = 0, level: float = 80.0, weekend: float = 1.0) -> np.ndarray:
    """Poisson counts with a daily cycle and an optional weekend factor."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    mu = level * (1 + 0.6 * np.sin(2 * np.pi * i / 24)) * np.where((i // 24) % 7 >= 5, weekend, 1.0)
    return rng.poisson(mu).astype(float)
