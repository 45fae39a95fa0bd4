"""The voice metrics, as declared once in `seeds/metric_definitions.csv` (the seed dbt
loads): each metric's name, the sessions column that holds it, and its optimal range."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache

from warehouse.paths import project_root


@dataclass(frozen=True)
class Metric:
    name: str
    value_column: str  # the column of raw.sessions that holds it
    unit: str
    optimal_low: float
    optimal_high: float


@cache
def voice_metrics() -> tuple[Metric, ...]:
    """The metrics in the seed's order."""
    path = project_root() / "seeds" / "metric_definitions.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        return tuple(
            Metric(
                row["metric"], row["value_column"], row["unit"],
                float(row["optimal_low"]), float(row["optimal_high"]),
            )
            for row in csv.DictReader(handle)
        )


def metric_names() -> tuple[str, ...]:
    return tuple(metric.name for metric in voice_metrics())
