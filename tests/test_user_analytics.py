"""User analytics and sessions marts, recomputed independently with pandas/numpy/scipy.

Every column of every table of marts.md's "User analytics" and "Sessions" sections is
recomputed here straight from the generated raw files (read with pandas/pyarrow, validated
and de-duplicated by this module itself, newest `updated_at` wins) exactly as the contract
words it, and compared with the marts `built_warehouse` built; all agree within 1e-6.
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import math
import re
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import AS_OF
from scipy import stats

from loaders.streams import (
    INTEGER,
    JSON_ARRAY,
    JSON_OBJECT,
    NUMBER,
    STREAMS,
    TEXT,
    TIMESTAMP,
    UUID,
    Column,
)

TOLERANCE = 1e-6
ROOT = Path(__file__).resolve().parent.parent
METRICS = ("pace", "pitch", "volume", "pauses", "clarity", "confidence")
AS_OF_END = pd.Timestamp(AS_OF + dt.timedelta(days=1), tz="UTC")

# --------------------------------------------------------------------------- raw files

_UUID_RE = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)
_ISO_START = re.compile(r"^\s*\d{4}-\d{2}-\d{2}")
_ZONES = available_timezones() | {"UTC"}


class _Bad(Exception):
    """A raw value that the loader's rules reject (the row goes to quarantine)."""


def _records(path: Path, fmt: str) -> Iterable[dict[str, Any]]:
    """The file's data records as dicts of python values (CSV cells as text, '' = None)."""
    if fmt.startswith("csv"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
        for row in frame.to_dict("records"):
            yield {key: (None if value == "" else value) for key, value in row.items()}
    elif fmt.startswith(("jsonl", "ndjson")):
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                record = json.loads(line)
                if record.get("_type") == "schema":
                    continue
                yield record
    else:
        yield from pq.read_table(path).to_pylist()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _typed(column: Column, value: Any) -> Any:
    """The typed value the loader stores for a raw cell, or _Bad when a rule rejects it."""
    if value is None:
        if column.required:
            raise _Bad(f"{column.name} missing")
        return None
    if column.kind == UUID:
        if not _UUID_RE.match(str(value).strip()):
            raise _Bad(f"{column.name} not a uuid")
        flat = str(value).strip().replace("-", "").lower()
        return f"{flat[:8]}-{flat[8:12]}-{flat[12:16]}-{flat[16:20]}-{flat[20:]}"
    if column.kind == TIMESTAMP:
        if isinstance(value, dt.datetime):
            stamp = pd.Timestamp(value)
            return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        if not _ISO_START.match(str(value)):
            raise _Bad(f"{column.name} not a timestamp")
        stamp = pd.to_datetime(str(value), format="ISO8601", errors="coerce", utc=True)
        if pd.isna(stamp):
            raise _Bad(f"{column.name} not a timestamp")
        return stamp
    if column.kind in (NUMBER, INTEGER):
        try:
            number = float(value) if not isinstance(value, str) else float(value.strip())
        except ValueError as error:
            raise _Bad(f"{column.name} not a number") from error
        if not math.isfinite(number) or (isinstance(value, str) and "n" in value.lower()):
            raise _Bad(f"{column.name} not a number")
        if column.kind == INTEGER and number != int(number):
            raise _Bad(f"{column.name} not whole")
        if column.minimum is not None and number < column.minimum:
            raise _Bad(f"{column.name} below minimum")
        if column.maximum is not None and number > column.maximum:
            raise _Bad(f"{column.name} above maximum")
        return int(number) if column.kind == INTEGER else number
    if column.kind in (JSON_ARRAY, JSON_OBJECT):
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except ValueError as error:
                raise _Bad(f"{column.name} not json") from error
        else:
            is_list = column.kind == JSON_ARRAY and not isinstance(value, dict)
            parsed = list(value) if is_list else value
        if column.kind == JSON_ARRAY:
            if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
                raise _Bad(f"{column.name} not an array of strings")
        elif not isinstance(parsed, dict):
            raise _Bad(f"{column.name} not an object")
        return parsed
    text = _text(value)
    if column.allowed and text not in column.allowed:
        raise _Bad(f"{column.name} not allowed")
    if column.name == "timezone" and text not in _ZONES:
        raise _Bad("unknown time zone")
    assert column.kind == TEXT
    return text


def read_stream(folder: Path, stream_name: str) -> pd.DataFrame:
    """Valid rows of a stream from every file of it, de-duplicated as the contract says:
    the newest updated_at wins, on a tie (or without updated_at) the first loaded wins."""
    stream = STREAMS[stream_name]
    manifest = json.loads((folder / "manifest.json").read_text())
    files = sorted(entry["file"] for entry in manifest["files"] if entry["stream"] == stream_name)
    rows: list[dict[str, Any]] = []
    for load_order, name in enumerate(files):
        fmt = next(e["format"] for e in manifest["files"] if e["file"] == name)
        for row_number, record in enumerate(_records(folder / name, fmt)):
            version = str(record.get("_schema_version", "1"))
            if not re.match(r"^1(\.|$)", version):
                continue
            try:
                typed = {c.name: _typed(c, record.get(c.name)) for c in stream.columns}
            except _Bad:
                continue
            if (
                stream_name == "attempts"
                and typed["ended_at"] is not None
                and typed["ended_at"] < typed["started_at"]
            ):
                continue
            typed["_load"] = (load_order, row_number)
            rows.append(typed)
    frame = pd.DataFrame(rows, columns=[*stream.column_names, "_load"])
    order = ["_load"] if stream.version_column is None else [stream.version_column, "_load"]
    ascending = [True] if stream.version_column is None else [False, True]
    frame = frame.sort_values(order, ascending=ascending, kind="stable")
    frame = frame.drop_duplicates(stream.key, keep="first").drop(columns="_load")
    return frame.reset_index(drop=True)


def _field(events: pd.DataFrame, key: str) -> list[str | None]:
    """`event_value ->> key` for every event (null when the payload or the key is missing)."""
    return [_json_text((value or {}).get(key)) for value in events["event_value"]]


def _json_text(value: Any) -> str | None:
    """What Postgres' `->>` gives for a JSON value: strings as is, the rest as JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


# --------------------------------------------------------------------------- contract

CONTRACT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # table: (primary key, the contract's columns in order)
    "user_metric_stats": (
        ("user_id", "metric"),
        (
            "user_id", "metric", "n", "min_value", "max_value", "mean_value", "median_value",
            "mode_value", "stddev_value", "variance_value", "range_value", "iqr_value", "p25",
            "p50", "p75", "p90", "p95", "p99", "pct_in_optimal", "pct_above_optimal",
            "pct_below_optimal", "pct_improved_vs_previous",
        ),
    ),
    "user_metric_trends": (
        ("user_id", "metric"),
        (
            "user_id", "metric", "n", "baseline_value", "current_value", "change_abs",
            "change_pct", "slope_per_day", "intercept", "r_squared", "velocity_per_week",
            "trend_direction", "trend_strength",
        ),
    ),
    "user_metric_patterns": (("user_id", "metric"), ("user_id", "metric", "pattern")),
    "user_consistency": (
        ("user_id", "metric"),
        ("user_id", "metric", "consistency_score", "session_to_session_variance"),
    ),
    "user_practice_habits": (
        ("user_id",),
        (
            "user_id", "total_sessions", "total_practice_minutes", "first_session_at",
            "last_session_at", "active_days", "sessions_per_week", "avg_days_between_sessions",
            "longest_streak_days", "current_streak_days", "preferred_day_of_week",
            "preferred_hour_of_day",
        ),
    ),
    "user_comparisons": (
        ("user_id", "metric", "comparison"),
        (
            "user_id", "metric", "comparison", "current_value", "compared_value", "difference",
            "pct_change",
        ),
    ),
    "user_predictions": (
        ("user_id", "metric", "horizon"),
        (
            "user_id", "metric", "horizon", "horizon_days", "projected_value", "target_value",
            "goal_probability",
        ),
    ),
    "user_best_worst_sessions": (
        ("user_id", "kind", "rank"),
        ("user_id", "kind", "rank", "session_id", "started_at", "score"),
    ),
    "user_milestones": (
        ("user_id", "milestone"),
        ("user_id", "milestone", "achieved_at", "value"),
    ),
    "user_feedback_summary": (
        ("user_id", "metric"),
        (
            "user_id", "metric", "feedback_count", "warning_count", "most_common_message",
            "first_at", "last_at",
        ),
    ),
    "user_recommendations_summary": (
        ("user_id", "priority"),
        ("user_id", "priority", "total", "implemented", "implementation_rate"),
    ),
    "user_session_stats": (
        ("user_id", "period", "period_start"),
        (
            "user_id", "period", "period_start", "sessions", "total_minutes", "words_spoken",
            "avg_score", "avg_pronunciation", "avg_fluency", "avg_grammar",
            "conversation_sessions", "pronunciation_sessions", "roleplay_sessions",
        ),
    ),
    "user_topics": (("user_id", "topic"), ("user_id", "topic", "sessions", "last_seen_at")),
    "user_focus_areas": (
        ("user_id", "area"),
        ("user_id", "area", "occurrences_last_7_days", "last_seen_at"),
    ),
}

# --------------------------------------------------------------------------- definitions

METRIC_COLUMNS = {
    "pace": "pace_wpm", "pitch": "pitch_hz", "volume": "volume_db",
    "pauses": "pauses_per_min", "clarity": "clarity", "confidence": "confidence",
}


def _definitions() -> dict[str, dict[str, Any]]:
    frame = pd.read_csv(ROOT / "seeds" / "metric_definitions.csv", dtype=str, keep_default_na=False)
    out = {}
    for row in frame.to_dict("records"):
        direction = {"true": True, "false": False, "": None}[row["higher_is_better"].lower()]
        out[row["metric"]] = {
            "low": float(row["optimal_low"]), "high": float(row["optimal_high"]),
            "higher_is_better": direction, "target": float(row["target"]),
        }
    return out


def goodness(value: float, definition: dict[str, Any]) -> float:
    """Larger is better, by the metric's direction (null: closer to the range's midpoint)."""
    if definition["higher_is_better"] is True:
        return value
    if definition["higher_is_better"] is False:
        return -value
    return -abs(value - (definition["low"] + definition["high"]) / 2.0)


def meets_goal(value: float, definition: dict[str, Any]) -> bool:
    if definition["higher_is_better"] is True:
        return value >= definition["target"]
    if definition["higher_is_better"] is False:
        return value <= definition["target"]
    return definition["low"] <= value <= definition["high"]


def round_half_away(value: float) -> Decimal:
    """Postgres `round(value::numeric, 1)`: float8 → numeric keeps 15 significant digits."""
    return Decimal(format(value, ".15g")).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def smallest_mode(values: Iterable[Any]) -> Any:
    counts = pd.Series(list(values)).value_counts()
    if counts.empty:
        return None
    return min(counts[counts == counts.max()].index)


def _mean(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and not pd.isna(v)]
    return float(np.mean(values)) if values else None


def _pct_change(difference: float | None, reference: float | None) -> float | None:
    if difference is None or reference is None or reference == 0:
        return None
    return 100.0 * difference / abs(reference)


def _runs(dates: Iterable[dt.date]) -> list[tuple[dt.date, dt.date, int]]:
    """Runs of consecutive dates: (first, last, days), in date order."""
    runs: list[list[Any]] = []
    for day in sorted(set(dates)):
        if runs and (day - runs[-1][1]).days == 1:
            runs[-1][1] = day
            runs[-1][2] += 1
        else:
            runs.append([day, day, 1])
    return [(a, b, n) for a, b, n in runs]


# --------------------------------------------------------------------------- reference


class Reference:
    """Every user-analytics and sessions mart, recomputed from the raw files."""

    def __init__(self, folder: Path, as_of: dt.date) -> None:
        self.as_of = as_of
        self.as_of_end = pd.Timestamp(as_of + dt.timedelta(days=1), tz="UTC")
        self.definitions = _definitions()
        users = read_stream(folder, "users")
        self.time_zones = {
            row.user_id: (row.timezone if isinstance(row.timezone, str) else "UTC")
            for row in users.itertuples(index=False)
        }
        self.sessions = read_stream(folder, "sessions").sort_values(
            ["user_id", "started_at", "session_id"], kind="stable"
        )
        events = read_stream(folder, "kpi_events")
        events = events[events["event_type"].isin(["feedback_given", "recommendation_made"])]
        attempts = read_stream(folder, "attempts").set_index("attempt_id")["started_at"]
        missing = events["occurred_at"].isna()
        events = events.copy()
        events.loc[missing, "occurred_at"] = events.loc[missing, "attempt_id"].map(
            attempts
        ) + pd.to_timedelta(events.loc[missing, "timestamp_ms"], unit="ms")
        self.events = events
        self.series = self._series()
        # the organisation each user's rows carry (marts add org_id beyond the contract)
        pairs = pd.concat([self.sessions[["user_id", "org_id"]], events[["user_id", "org_id"]]])
        self.user_orgs = pairs.drop_duplicates("user_id").set_index("user_id")["org_id"]

    # --- shared building blocks --------------------------------------------------------

    def _series(self) -> dict[tuple[str, str], pd.DataFrame]:
        """Per user and metric: the sessions with a value, in order, with x in days."""
        out = {}
        for metric, column in METRIC_COLUMNS.items():
            frame = self.sessions[["user_id", "session_id", "started_at", column]].dropna(
                subset=[column]
            )
            for user_id, group in frame.groupby("user_id", sort=True):
                group = group.sort_values(["started_at", "session_id"], kind="stable")
                seconds = (group["started_at"] - group["started_at"].iloc[0]).dt.total_seconds()
                out[(user_id, metric)] = pd.DataFrame(
                    {
                        "session_id": group["session_id"].to_numpy(),
                        "started_at": group["started_at"].to_numpy(),
                        "value": group[column].astype(float).to_numpy(),
                        "x": (seconds / 86400.0).to_numpy(),
                    }
                )
        return out

    def _regression(self, x: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
        """As Postgres regr_slope / regr_intercept / regr_r2 (null when x has no variance;
        r² = 1 when y has none), via scipy; s = sqrt(SSE / (n − 2)) from the residuals."""
        n = len(x)
        if n < 2 or np.ptp(x) == 0:
            return {"slope": None, "intercept": None, "r2": None, "s": None}
        constant = np.ptp(y) == 0
        if constant:
            slope, intercept, r2 = 0.0, float(y[0]), 1.0
        else:
            fit = stats.linregress(x, y)
            slope, intercept, r2 = float(fit.slope), float(fit.intercept), float(fit.rvalue) ** 2
        s = None
        if n >= 3:
            sse = float(np.sum((y - (intercept + slope * x)) ** 2))
            s = 0.0 if constant else math.sqrt(sse / (n - 2))
        return {"slope": slope, "intercept": intercept, "r2": r2, "s": s}

    def _local(self, user_id: str, stamps: pd.Series) -> pd.Series:
        return stamps.dt.tz_convert(ZoneInfo(self.time_zones.get(user_id, "UTC")))

    # --- user analytics ----------------------------------------------------------------

    def user_metric_stats(self) -> pd.DataFrame:
        rows = []
        for (user_id, metric), frame in self.series.items():
            v = frame["value"].to_numpy()
            d = self.definitions[metric]
            n = len(v)
            p25, p50, p75, p90, p95, p99 = np.percentile(v, [25, 50, 75, 90, 95, 99])
            good = [goodness(x, d) for x in v]
            improved = sum(1 for a, b in itertools.pairwise(good) if b > a)
            rows.append({
                "user_id": user_id, "metric": metric, "n": n,
                "min_value": v.min(), "max_value": v.max(), "mean_value": v.mean(),
                "median_value": p50,
                "mode_value": float(smallest_mode(round_half_away(x) for x in v)),
                "stddev_value": float(np.std(v, ddof=1)) if n >= 2 else None,
                "variance_value": float(np.var(v, ddof=1)) if n >= 2 else None,
                "range_value": v.max() - v.min(), "iqr_value": p75 - p25,
                "p25": p25, "p50": p50, "p75": p75, "p90": p90, "p95": p95, "p99": p99,
                "pct_in_optimal": 100.0 * np.mean((v >= d["low"]) & (v <= d["high"])),
                "pct_above_optimal": 100.0 * np.mean(v > d["high"]),
                "pct_below_optimal": 100.0 * np.mean(v < d["low"]),
                "pct_improved_vs_previous": 100.0 * improved / (n - 1) if n >= 2 else None,
            })
        return pd.DataFrame(rows)

    def user_metric_trends(self) -> pd.DataFrame:
        rows = []
        for (user_id, metric), frame in self.series.items():
            v, x = frame["value"].to_numpy(), frame["x"].to_numpy()
            d = self.definitions[metric]
            n = len(v)
            baseline, current = float(v[:3].mean()), float(v[-3:].mean())
            change_pct = _pct_change(current - baseline, baseline)
            fit = self._regression(x, v)
            if n < 3 or change_pct is None or abs(change_pct) < 5:
                direction = "stable"
            elif goodness(current, d) > goodness(baseline, d):
                direction = "improving"
            else:
                direction = "declining"
            r2 = fit["r2"]
            strength = "weak" if r2 is None or r2 < 0.4 else ("moderate" if r2 < 0.7 else "strong")
            rows.append({
                "user_id": user_id, "metric": metric, "n": n, "baseline_value": baseline,
                "current_value": current, "change_abs": current - baseline,
                "change_pct": change_pct, "slope_per_day": fit["slope"],
                "intercept": fit["intercept"], "r_squared": r2,
                "velocity_per_week": None if fit["slope"] is None else 7 * fit["slope"],
                "trend_direction": direction, "trend_strength": strength,
            })
        return pd.DataFrame(rows)

    def user_consistency(self) -> pd.DataFrame:
        rows = []
        for (user_id, metric), frame in self.series.items():
            v = frame["value"].to_numpy()
            n = len(v)
            score = None
            if n >= 2 and v.mean() != 0:
                score = max(0.0, 100.0 * (1.0 - np.std(v, ddof=1) / abs(v.mean())))
            variance = float(np.var(np.diff(v), ddof=1)) if n >= 3 else None
            rows.append({
                "user_id": user_id, "metric": metric, "consistency_score": score,
                "session_to_session_variance": variance,
            })
        per_metric = pd.DataFrame(rows)
        overall = [
            {
                "user_id": user_id, "metric": "overall",
                "consistency_score": _mean(group["consistency_score"]),
                "session_to_session_variance": None,
            }
            for user_id, group in per_metric.groupby("user_id")
        ]
        return pd.concat([per_metric, pd.DataFrame(overall)], ignore_index=True)

    def user_metric_patterns(self) -> pd.DataFrame:
        trends = self.user_metric_trends()
        scores = self.user_consistency().set_index(["user_id", "metric"])["consistency_score"]
        rows = []
        for t in trends.to_dict("records"):
            score = scores.get((t["user_id"], t["metric"]))
            solid = t["trend_strength"] in ("strong", "moderate")
            improving = t["trend_direction"] == "improving"
            if score is not None and not pd.isna(score) and score < 60:
                pattern = "volatile"
            elif improving and abs(t["change_pct"]) >= 20 and solid:
                pattern = "rapid_improvement"
            elif improving and solid:
                pattern = "consistent_improvement"
            elif t["trend_direction"] == "declining":
                pattern = "declining"
            elif t["trend_direction"] == "stable":
                pattern = "plateau"
            else:
                pattern = "none"
            rows.append({"user_id": t["user_id"], "metric": t["metric"], "pattern": pattern})
        return pd.DataFrame(rows)

    def user_practice_habits(self) -> pd.DataFrame:
        rows = []
        for user_id, group in self.sessions.groupby("user_id", sort=True):
            local = self._local(user_id, group["started_at"])
            dates = [stamp.date() for stamp in local]
            n = len(group)
            runs = _runs(dates)
            zone = ZoneInfo(self.time_zones.get(user_id, "UTC"))
            local_as_of = (self.as_of_end - pd.Timedelta(microseconds=1)).tz_convert(zone).date()
            current = [
                days for _, last, days in runs
                if self.as_of - dt.timedelta(days=1) <= last <= local_as_of
            ]
            first, last = group["started_at"].min(), group["started_at"].max()
            span_days = (max(dates) - min(dates)).days + 1
            rows.append({
                "user_id": user_id, "total_sessions": n,
                "total_practice_minutes": group["duration_ms"].fillna(0).sum() / 60000.0,
                "first_session_at": first, "last_session_at": last,
                "active_days": len(set(dates)),
                "sessions_per_week": n / max(1.0, span_days / 7.0),
                "avg_days_between_sessions": (
                    float(np.mean(np.diff((group["started_at"] - first).dt.total_seconds())))
                    / 86400.0
                    if n >= 2 else None
                ),
                "longest_streak_days": max(days for _, _, days in runs),
                "current_streak_days": current[0] if current else 0,
                "preferred_day_of_week": smallest_mode(s.isoweekday() for s in local),
                "preferred_hour_of_day": smallest_mode(s.hour for s in local),
            })
        return pd.DataFrame(rows)

    def user_comparisons(self) -> pd.DataFrame:
        trends = self.user_metric_trends().set_index(["user_id", "metric"])
        week_start = pd.Timestamp(self.as_of - dt.timedelta(days=self.as_of.weekday()), tz="UTC")
        month_start = pd.Timestamp(self.as_of.replace(day=1), tz="UTC")
        previous_month = (month_start - pd.Timedelta(days=1)).replace(day=1)
        windows = {
            "last_week": (week_start - pd.Timedelta(days=7), week_start),
            "last_month": (previous_month, month_start),
        }
        rows = []
        for (user_id, metric), frame in self.series.items():
            d = self.definitions[metric]
            t = trends.loc[(user_id, metric)]
            # the best by direction; ties: the earliest session, at one instant the smaller value
            peak = min(
                zip(frame["value"], frame["started_at"], strict=True),
                key=lambda pair: (-goodness(pair[0], d), pair[1], pair[0]),
            )[0]
            compared = {"baseline": t["baseline_value"], "peak": peak}
            for name, (start, end) in windows.items():
                inside = (frame["started_at"] >= start) & (frame["started_at"] < end)
                compared[name] = _mean(frame.loc[inside, "value"])
            for name in ("baseline", "last_week", "last_month", "peak"):
                value = compared[name]
                difference = None if value is None else t["current_value"] - value
                rows.append({
                    "user_id": user_id, "metric": metric, "comparison": name,
                    "current_value": t["current_value"], "compared_value": value,
                    "difference": difference, "pct_change": _pct_change(difference, value),
                })
        return pd.DataFrame(rows)

    def user_predictions(self) -> pd.DataFrame:
        rows = []
        for (user_id, metric), frame in self.series.items():
            d = self.definitions[metric]
            v, x = frame["value"].to_numpy(), frame["x"].to_numpy()
            fit = self._regression(x, v)
            for horizon, days in (("next_week", 7), ("next_month", 30), ("next_quarter", 91)):
                projected = probability = None
                if len(v) >= 3 and fit["slope"] is not None:
                    projected = fit["intercept"] + fit["slope"] * (x[-1] + days)
                    s = fit["s"]
                    if s == 0:
                        probability = 1.0 if meets_goal(projected, d) else 0.0
                    elif d["higher_is_better"] is True:
                        probability = stats.norm.cdf((projected - d["target"]) / s)
                    elif d["higher_is_better"] is False:
                        probability = stats.norm.cdf((d["target"] - projected) / s)
                    else:
                        probability = stats.norm.cdf((d["high"] - projected) / s) - stats.norm.cdf(
                            (d["low"] - projected) / s
                        )
                rows.append({
                    "user_id": user_id, "metric": metric, "horizon": horizon,
                    "horizon_days": days, "projected_value": projected,
                    "target_value": d["target"],
                    "goal_probability": None if probability is None else float(probability),
                })
        return pd.DataFrame(rows)

    def user_best_worst_sessions(self) -> pd.DataFrame:
        scored = self.sessions.dropna(subset=["score"])
        rows = []
        for user_id, group in scored.groupby("user_id", sort=True):
            for kind, ascending in (("best", False), ("worst", True)):
                ordered = group.assign(key=group["score"] if ascending else -group["score"])
                ordered = ordered.sort_values(["key", "started_at", "session_id"]).head(5)
                for rank, row in enumerate(ordered.itertuples(index=False), start=1):
                    rows.append({
                        "user_id": user_id, "kind": kind, "rank": rank,
                        "session_id": row.session_id, "started_at": row.started_at,
                        "score": row.score,
                    })
        return pd.DataFrame(rows)

    def user_milestones(self) -> pd.DataFrame:
        definitions = pd.read_csv(ROOT / "seeds" / "milestone_definitions.csv")
        rows = []
        for user_id, group in self.sessions.groupby("user_id", sort=True):
            group = group.sort_values(["started_at", "session_id"]).reset_index(drop=True)
            number = np.arange(1, len(group) + 1)
            hours = group["duration_ms"].fillna(0).cumsum().to_numpy() / 3_600_000.0
            local_dates = [s.date() for s in self._local(user_id, group["started_at"])]
            runs = _runs(local_dates)
            for d in definitions.to_dict("records"):
                threshold = float(d["threshold"])
                hit: tuple[int, float] | None = None
                if d["milestone_type"] == "sessions":
                    reached = np.flatnonzero(number == threshold)
                    hit = (int(reached[0]), threshold) if len(reached) else None
                elif d["milestone_type"] == "score":
                    reached = np.flatnonzero(group["score"].fillna(-1).to_numpy() >= threshold)
                    hit = (int(reached[0]), group["score"][reached[0]]) if len(reached) else None
                elif d["milestone_type"] == "practice_hours":
                    reached = np.flatnonzero(hours >= threshold)
                    hit = (int(reached[0]), hours[reached[0]]) if len(reached) else None
                elif d["milestone_type"] == "streak_days":
                    days = [
                        first + dt.timedelta(days=int(threshold) - 1)
                        for first, _, length in runs
                        if length >= threshold
                    ]
                    if days:
                        hit = (local_dates.index(days[0]), threshold)
                if hit is not None:
                    rows.append({
                        "user_id": user_id, "milestone": d["milestone"],
                        "achieved_at": group["started_at"][hit[0]], "value": float(hit[1]),
                        "session_id": group["session_id"][hit[0]],
                    })
        return pd.DataFrame(rows)

    def user_feedback_summary(self) -> pd.DataFrame:
        feedback = self.events[self.events["event_type"] == "feedback_given"]
        parts = pd.DataFrame({
            "user_id": feedback["user_id"],
            "metric": [v or "unknown" for v in _field(feedback, "metric")],
            "message": _field(feedback, "message"),
            "severity": _field(feedback, "severity"),
            "occurred_at": feedback["occurred_at"],
        })
        rows = []
        for (user_id, metric), group in parts.groupby(["user_id", "metric"], sort=True):
            rows.append({
                "user_id": user_id, "metric": metric, "feedback_count": len(group),
                "warning_count": int((group["severity"] == "warning").sum()),
                "most_common_message": smallest_mode(group["message"].dropna()),
                "first_at": group["occurred_at"].min(), "last_at": group["occurred_at"].max(),
            })
        return pd.DataFrame(rows)

    def user_recommendations_summary(self) -> pd.DataFrame:
        made = self.events[self.events["event_type"] == "recommendation_made"]
        parts = pd.DataFrame({
            "user_id": made["user_id"],
            "priority": [v or "unknown" for v in _field(made, "priority")],
            "implemented": [v == "true" for v in _field(made, "implemented")],
        })
        rows = []
        for (user_id, priority), group in parts.groupby(["user_id", "priority"], sort=True):
            implemented = int(group["implemented"].sum())
            rows.append({
                "user_id": user_id, "priority": priority, "total": len(group),
                "implemented": implemented, "implementation_rate": 100.0 * implemented / len(group),
            })
        return pd.DataFrame(rows)

    # --- sessions ----------------------------------------------------------------------

    def user_session_stats(self) -> pd.DataFrame:
        sessions = self.sessions
        utc_dates = sessions["started_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
        starts = {
            "week": utc_dates - pd.to_timedelta(utc_dates.dt.day_of_week, unit="D"),
            "month": utc_dates - pd.to_timedelta(utc_dates.dt.day - 1, unit="D"),
        }
        rows = []
        for period, period_start in starts.items():
            frame = sessions.assign(period_start=period_start.dt.date)
            for (user_id, start), group in frame.groupby(["user_id", "period_start"], sort=True):
                types = group["session_type"]
                rows.append({
                    "user_id": user_id, "period": period, "period_start": start,
                    "sessions": len(group),
                    "total_minutes": group["duration_ms"].sum(min_count=1) / 60000.0,
                    "words_spoken": group["words_spoken"].sum(min_count=1),
                    "avg_score": _mean(group["score"]),
                    "avg_pronunciation": _mean(group["pronunciation_score"]),
                    "avg_fluency": _mean(group["fluency_score"]),
                    "avg_grammar": _mean(group["grammar_score"]),
                    "conversation_sessions": int((types == "conversation").sum()),
                    "pronunciation_sessions": int((types == "pronunciation").sum()),
                    "roleplay_sessions": int((types == "roleplay").sum()),
                })
        return pd.DataFrame(rows)

    def _items(self, column: str) -> pd.DataFrame:
        frame = self.sessions[["user_id", "session_id", "started_at", column]].copy()
        frame[column] = frame[column].map(lambda items: items if isinstance(items, list) else [])
        return frame.explode(column).dropna(subset=[column])

    def user_topics(self) -> pd.DataFrame:
        items = self._items("topics")
        grouped = items.groupby(["user_id", "topics"], sort=True).agg(
            sessions=("session_id", "nunique"), last_seen_at=("started_at", "max")
        )
        return grouped.reset_index().rename(columns={"topics": "topic"})

    def user_focus_areas(self) -> pd.DataFrame:
        items = self._items("areas_to_improve")
        items = items[items["started_at"] < self.as_of_end]
        window_start = pd.Timestamp(self.as_of - dt.timedelta(days=6), tz="UTC")
        items = items.assign(recent=(items["started_at"] >= window_start).astype(int))
        grouped = items.groupby(["user_id", "areas_to_improve"], sort=True).agg(
            occurrences_last_7_days=("recent", "sum"), last_seen_at=("started_at", "max")
        )
        return grouped.reset_index().rename(columns={"areas_to_improve": "area"})


# --------------------------------------------------------------------------- comparison


def _same(actual: Any, expected: Any) -> bool:
    actual_missing = actual is None or (not isinstance(actual, str) and pd.isna(actual))
    expected_missing = expected is None or (not isinstance(expected, str) and pd.isna(expected))
    if actual_missing or expected_missing:
        return actual_missing and expected_missing
    if isinstance(expected, (dt.datetime, pd.Timestamp)):
        return pd.Timestamp(actual) == pd.Timestamp(expected)
    if isinstance(expected, dt.date):
        return actual == expected
    if isinstance(expected, (bool, np.bool_)):
        return bool(actual) == bool(expected)
    if isinstance(expected, (int, float, np.integer, np.floating, Decimal)):
        return abs(float(actual) - float(expected)) <= TOLERANCE
    return str(actual) == str(expected)


def assert_frames_agree(
    actual: pd.DataFrame, expected: pd.DataFrame, keys: tuple[str, ...]
) -> None:
    """Same key set; every column of `expected` equal within TOLERANCE (nulls equal nulls)."""
    assert not actual.duplicated(list(keys)).any(), f"duplicate keys {keys} in the mart"
    actual = actual.assign(**{k: actual[k].map(str) for k in keys})
    expected = expected.assign(**{k: expected[k].map(str) for k in keys})
    merged = actual.merge(expected, on=list(keys), how="outer", suffixes=("", "__expected"),
                          indicator=True)
    only_mart = merged[merged["_merge"] == "left_only"][list(keys)]
    only_expected = merged[merged["_merge"] == "right_only"][list(keys)]
    assert only_mart.empty and only_expected.empty, (
        f"rows only in the mart:\n{only_mart.head(10)}\nrows only in the recomputation:\n"
        f"{only_expected.head(10)}"
    )
    problems = []
    for column in expected.columns:
        if column in keys:
            continue
        got, want = merged[column], merged[f"{column}__expected"]
        bad = [i for i in range(len(merged)) if not _same(got.iloc[i], want.iloc[i])]
        if bad:
            sample = merged.iloc[bad[:5]][[*keys, column, f"{column}__expected"]]
            problems.append(f"{column}: {len(bad)} of {len(merged)} rows differ\n{sample}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def reference(generated_data: Path) -> Reference:
    return Reference(generated_data, AS_OF)


@pytest.mark.parametrize("table", sorted(CONTRACT))
def test_mart_matches_recomputation(built_warehouse, reference: Reference, table: str) -> None:
    keys, columns = CONTRACT[table]
    actual = built_warehouse.frame(f"select * from marts.{table}")
    assert list(actual.columns[: len(columns)]) == list(columns), "contract columns, in order"
    expected: pd.DataFrame = getattr(reference, table)()
    assert set(columns) <= set(expected.columns), "the recomputation covers every column"
    assert len(expected) > 0, f"the generated data gives {table} no rows to check"
    expected = expected.assign(org_id=expected["user_id"].map(reference.user_orgs))
    assert set(expected.columns) == set(actual.columns), "every column of the mart is checked"
    assert_frames_agree(actual, expected, keys)


def test_generated_data_exercises_the_marts(built_warehouse, reference: Reference) -> None:
    """The data set exercises what the marts are about: all metrics, streaks, time zones."""
    metrics = {metric for _, metric in reference.series}
    assert metrics == set(METRICS)
    habits = built_warehouse.frame(
        "select max(longest_streak_days) as longest, max(current_streak_days) as current "
        "from marts.user_practice_habits"
    )
    assert habits["longest"][0] >= 7 and habits["current"][0] >= 1
    zones = {zone for zone in reference.time_zones.values()}
    assert len(zones) >= 3, "several time zones, so local dates matter"
