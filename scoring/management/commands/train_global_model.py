"""Train the global cold-start transaction model from simulated data (reproducible with --seed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from scoring.registry import GLOBAL_NAME, GLOBAL_STORE, global_model_train


class Command(BaseCommand):
    help = ("Train the global model (version 0) from the simulator and save it as scoring/artifacts_store/"
            f"{GLOBAL_NAME}.npz + .json (commit both). Same seed -> same sha256.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=42, help="model seed (Isolation Forest)")
        parser.add_argument("--scenario", default="default", help="simulator scenario name or YAML path")
        parser.add_argument("--scenario-seed", type=int, default=7,
                            help="simulation seed; differs from the accuracy bench's 42 on purpose")
        parser.add_argument("--days", type=int, default=None, help="shorten the scenario (tests)")
        parser.add_argument("--n-estimators", type=int, default=100)
        parser.add_argument("--out", default=str(GLOBAL_STORE / GLOBAL_NAME), help="artifact path without suffix")

    def handle(self, *args: Any, **opts: Any) -> None:
        report = global_model_train(out=Path(opts["out"]), seed=opts["seed"], scenario=opts["scenario"],
                                    scenario_seed=opts["scenario_seed"], n_estimators=opts["n_estimators"],
                                    days=opts["days"])
        self.stdout.write(json.dumps(report))
