"""Deterministic simulator of a mid-size D2C shop, its ground-truth labels and the
matching logic that turns detected anomalies into accuracy figures.

Pure Python (NumPy, PyYAML, pydantic, matplotlib for plots): no Django, so the
management commands `simulate` / `evaluate` can sit on top of it and tests run
without a database.
"""

from __future__ import annotations

from simulator.config import ScenarioConfig, load_config
from simulator.generator import Scenario, generate
from simulator.labels import EventLabel, Label

__all__ = ["EventLabel", "Label", "Scenario", "ScenarioConfig", "generate", "load_config"]
