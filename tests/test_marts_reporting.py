"""Reporting and KPI marts, recomputed independently with pandas from the raw files.

Every mart of marts.md's "Reporting" and "KPI events" sections (and the team digest) is
recomputed here from the generated files in `generated_data`, read with pandas/pyarrow.
Which rows are valid is taken from the raw tables (the loader quarantines the bad ones, and
every bad row carries an id of its own, so the set of ids in `raw.<stream>` is the row
set); everything else - typing, the winning version of each record, every figure - is
computed here from the file contents, as the contract words it, and compared with the
marts `built_warehouse` built: counts exactly, other figures within 1e-6.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import AS_OF

TOLERANCE = 1e-6
ROOT = Path(__file__).resolve().parent.parent
AS_OF_END = pd.Timestamp(AS_OF + dt.timedelta(days=1), tz="UTC")
KEYS = {
    "orgs": "org_id",
    "users": "user_id",
    "attempts": "attempt_id",
    "kpi_events": "event_id",
}
UUID_COLUMNS = ("org_id", "attempt_id", "scenario_id", "event_id")
TIMESTAMP_COLUMNS = ("created_at", "updated_at", "started_at", "ended_at", "occurred_at")
NUMBER_COLUMNS = ("score", "duration_seconds", "talk_ms", "listen_ms", "timestamp_ms")
KPI_COUNTS = {
    "filler_words": "filler_word",
    "interruptions": "interruption",
    "questions_asked": "question_asked",
    "objections_raised": "objection_raised",
    "keywords_mentioned": "keyword_mentioned",
    "long_pauses": "long_pause",
}

# --------------------------------------------------------------------------- raw files


def _records(path: Path, fmt: str) -> pd.DataFrame:
    """A file's data rows, in file order, as delivered (CSV cells as text, '' = null)."""
    if fmt.startswith("csv"):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return frame.replace("", None)
    if fmt.startswith(("jsonl", "ndjson")):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        return pd.DataFrame([r for r in records if r.get("_type") != "schema"])
    return pq.read_table(path).to_pandas()


def _uuid_text(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value).strip()))
    except (ValueError, AttributeError):
        return None


def _missing(value: Any) -> bool:
    return (
        value is None or value is pd.NA or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    )


def _timestamp(value: Any) -> pd.Timestamp:
    """ISO 8601 text (an offset means that instant, none means UTC) or a parquet timestamp
    (naive = UTC), as a UTC timestamp."""
    if _missing(value):
        return pd.NaT
    if isinstance(value, dt.datetime):
        stamp = pd.Timestamp(value)
    else:
        stamp = pd.to_datetime(str(value), format="ISO8601", utc=True)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _json_object(value: Any) -> dict[str, Any]:
    if _missing(value):
        return {}
    if isinstance(value, dict):
        return value
    parsed = json.loads(value)
    return parsed if isinstance(parsed, dict) else {}


def read_stream(folder: Path, stream: str, valid_ids: set[str]) -> pd.DataFrame:
    """The stream's winning version of each record: newest updated_at wins, on a tie (or
    for kpi_events, which have none) the first loaded row wins - files load in name
    order, rows in file order."""
    manifest = json.loads((folder / "manifest.json").read_text())
    entries = sorted(
        (e for e in manifest["files"] if e["stream"] == stream), key=lambda e: e["file"]
    )
    key = KEYS[stream]
    frames = []
    for load_order, entry in enumerate(entries):
        frame = _records(folder / entry["file"], entry["format"]).reset_index(drop=True)
        if key in UUID_COLUMNS:
            frame[key] = frame[key].map(_uuid_text)
        else:
            frame[key] = frame[key].map(lambda v: None if _missing(v) else str(v))
        frame = frame[frame[key].isin(valid_ids)].copy()
        for column in UUID_COLUMNS:
            if column in frame.columns and column != key:
                frame[column] = frame[column].map(lambda v: None if _missing(v) else _uuid_text(v))
        for column in TIMESTAMP_COLUMNS:
            if column in frame.columns:
                frame[column] = pd.to_datetime(
                    frame[column].astype(object).map(_timestamp), utc=True
                )
        for column in NUMBER_COLUMNS:
            if column in frame.columns:
                frame[column] = pd.to_numeric(
                    frame[column].astype(object).map(lambda v: None if _missing(v) else v)
                ).astype(float)
        frame["_load_order"] = load_order
        frame["_row"] = frame.index
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    if "updated_at" in rows.columns:
        rows = rows.sort_values(
            ["updated_at", "_load_order", "_row"], ascending=[False, True, True], kind="stable"
        )
    else:
        rows = rows.sort_values(["_load_order", "_row"], kind="stable")
    winners = rows.drop_duplicates(key, keep="first").reset_index(drop=True)
    assert set(winners[key]) == valid_ids, f"{stream}: files and raw disagree on the row set"
    return winners


def _week_start(stamps: pd.Series) -> pd.Series:
    days = stamps.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    return (days - pd.to_timedelta(days.dt.day_of_week, unit="D")).dt.date


def _month_start(stamps: pd.Series) -> pd.Series:
    days = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return days.dt.to_period("M").dt.start_time.dt.date


def _rank(frame: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """rank(), dense_rank() and percent_rank() by avg_score, highest first (ties share)."""
    score = frame["avg_score"].round(9)
    grouped = score.groupby([frame[g] for g in group])
    frame = frame.copy()
    frame["rank"] = grouped.rank(method="min", ascending=False).astype(int)
    frame["dense_rank"] = grouped.rank(method="dense", ascending=False).astype(int)
    size = grouped.transform("size")
    frame["percent_rank"] = np.where(size > 1, (frame["rank"] - 1) / (size - 1).clip(lower=1), 0.0)
    return frame


@dataclass
class Reference:
    orgs: pd.DataFrame
    users: pd.DataFrame
    attempts: pd.DataFrame
    events: pd.DataFrame
    event_types: pd.DataFrame

    @property
    def completed(self) -> pd.DataFrame:
        return self.attempts[self.attempts["status"] == "completed"]

    @property
    def scored(self) -> pd.DataFrame:
        completed = self.completed
        return completed[completed["score"].notna()]

    def user_periods(self) -> pd.DataFrame:
        scored = self.scored.copy()
        both = scored["talk_ms"] + scored["listen_ms"]
        scored["talk_pct"] = np.where(both > 0, 100.0 * scored["talk_ms"] / both.where(both > 0),
                                      np.nan)
        frames = []
        for period_type, starts in (
            ("week", _week_start(scored["started_at"])),
            ("month", _month_start(scored["started_at"])),
        ):
            part = scored.assign(period_type=period_type, period_start=starts)
            frames.append(
                part.groupby(["org_id", "user_id", "period_type", "period_start"])
                .agg(
                    attempts=("score", "size"),
                    avg_score=("score", "mean"),
                    total_duration=("duration_seconds", lambda s: s.sum(min_count=1)),
                    avg_talk_percentage=("talk_pct", "mean"),
                )
                .reset_index()
            )
        return pd.concat(frames, ignore_index=True)

    # ---------------------------------------------------------------- reporting

    def mv_leaderboard_month(self) -> pd.DataFrame:
        months = self.user_periods()
        months = months[months["period_type"] == "month"].rename(columns={"period_start": "month"})
        return _rank(months, ["org_id", "month"])[
            ["org_id", "user_id", "month", "avg_score", "attempts", "total_duration",
             "avg_talk_percentage", "rank"]
        ]

    def mv_org_overview(self) -> pd.DataFrame:
        completed = self.completed
        week_start = AS_OF_END - pd.Timedelta(days=7)
        month_start = AS_OF_END - pd.Timedelta(days=30)
        ended = completed["ended_at"]
        frame = completed.assign(
            activity=completed["ended_at"].fillna(completed["started_at"]),
            this_week=(ended >= week_start) & (ended < AS_OF_END),
            this_month=(ended >= month_start) & (ended < AS_OF_END),
        )
        per_org = frame.groupby("org_id").agg(
            active_users=("user_id", "nunique"),
            total_attempts=("attempt_id", "size"),
            avg_score=("score", "mean"),
            last_activity=("activity", "max"),
            attempts_this_week=("this_week", "sum"),
            attempts_this_month=("this_month", "sum"),
        )
        orgs = sorted(set(self.orgs["org_id"]) | set(per_org.index))
        per_org = per_org.reindex(orgs)
        for column in ("active_users", "total_attempts", "attempts_this_week",
                       "attempts_this_month"):
            per_org[column] = per_org[column].fillna(0).astype(int)
        return per_org.rename_axis("org_id").reset_index()

    def mv_scenario_insights(self) -> pd.DataFrame:
        scored = self.scored[self.scored["scenario_id"].notna()]
        return (
            scored.groupby(["org_id", "scenario_id"])
            .agg(
                attempt_count=("score", "size"),
                avg_score=("score", "mean"),
                score_stddev=("score", lambda s: s.std(ddof=1)),
                avg_duration=("duration_seconds", "mean"),
                median_score=("score", "median"),
                last_attempted=("started_at", "max"),
            )
            .reset_index()
        )

    def leaderboards(self) -> pd.DataFrame:
        periods = _rank(self.user_periods(), ["org_id", "period_type", "period_start"])
        previous_start = np.where(
            periods["period_type"] == "week",
            pd.to_datetime(periods["period_start"]) - pd.Timedelta(days=7),
            pd.to_datetime(periods["period_start"]) - pd.DateOffset(months=1),
        )
        periods["previous_start"] = pd.to_datetime(previous_start).date
        previous = periods[["org_id", "user_id", "period_type", "period_start", "rank"]].rename(
            columns={"period_start": "previous_start", "rank": "previous_rank"}
        )
        board = periods.merge(
            previous, on=["org_id", "user_id", "period_type", "previous_start"], how="left"
        )
        board["rank_change"] = board["previous_rank"] - board["rank"]
        teams = self.users.set_index("user_id")["team"]
        board["team"] = board["user_id"].map(teams)
        current = {
            "week": AS_OF - dt.timedelta(days=AS_OF.weekday()),
            "month": AS_OF.replace(day=1),
        }
        board["is_current_period"] = [
            start == current[kind]
            for kind, start in zip(board["period_type"], board["period_start"], strict=True)
        ]
        return board[
            ["org_id", "period_type", "period_start", "user_id", "team", "attempts", "avg_score",
             "rank", "dense_rank", "percent_rank", "previous_rank", "rank_change",
             "is_current_period"]
        ]

    def team_weekly_digest(self) -> pd.DataFrame:
        users = self.users.set_index("user_id")
        attempts = self.attempts.assign(
            team=self.attempts["user_id"].map(users["team"]).fillna("(no team)"),
            user_name=self.attempts["user_id"].map(users["name"]),
            week_start=_week_start(self.attempts["started_at"]),
            is_completed=self.attempts["status"] == "completed",
        )
        attempts["completed_score"] = attempts["score"].where(attempts["is_completed"])
        keys = ["org_id", "team", "week_start"]
        digest = attempts.groupby(keys).agg(
            active_users=("user_id", "nunique"),
            attempts=("attempt_id", "size"),
            completed_attempts=("is_completed", "sum"),
            avg_score=("completed_score", "mean"),
        ).reset_index()
        digest["completion_rate"] = digest["completed_attempts"] / digest["attempts"]
        digest["is_current_week"] = digest["week_start"] == AS_OF - dt.timedelta(
            days=AS_OF.weekday()
        )
        performers = (
            attempts[attempts["completed_score"].notna()]
            .groupby([*keys, "user_id"])
            .agg(name=("user_name", "first"), attempts=("completed_score", "size"),
                 avg_score=("completed_score", "mean"))
            .reset_index()
        )
        tops, bottoms = {}, {}
        for group, users_of_week in performers.groupby(keys):
            rounded = users_of_week.assign(r=users_of_week["avg_score"].round(9))
            best = rounded.sort_values(["r", "user_id"], ascending=[False, True]).head(5)
            worst = rounded.sort_values(["r", "user_id"], ascending=[True, True]).head(5)
            tops[group] = best[["user_id", "avg_score", "attempts", "name"]].to_dict("records")
            bottoms[group] = worst[["user_id", "avg_score", "attempts", "name"]].to_dict("records")
        group_keys = list(zip(digest["org_id"], digest["team"], digest["week_start"], strict=True))
        digest["top_performers"] = [tops.get(k, []) for k in group_keys]
        digest["bottom_performers"] = [bottoms.get(k, []) for k in group_keys]
        return digest

    # ---------------------------------------------------------------- KPI

    def kpi_attempt_summary(self) -> pd.DataFrame:
        events = self.events.assign(
            is_open=(self.events["event_type"] == "question_asked")
            & (self.events["kind"] == "open")
        )
        counts = pd.crosstab(
            [events["org_id"], events["attempt_id"]], events["event_type"]
        )
        opens = events.groupby(["org_id", "attempt_id"])["is_open"].sum()
        summary = self.completed[
            ["attempt_id", "org_id", "user_id", "scenario_id", "duration_seconds"]
        ].copy()
        index = pd.MultiIndex.from_frame(summary[["org_id", "attempt_id"]])
        for column, event_type in KPI_COUNTS.items():
            values = counts[event_type] if event_type in counts.columns else pd.Series(dtype=int)
            summary[column] = values.reindex(index).fillna(0).astype(int).to_numpy()
        summary["open_questions"] = opens.reindex(index).fillna(0).astype(int).to_numpy()
        minutes = summary["duration_seconds"] / 60.0
        summary["filler_words_per_minute"] = np.where(
            minutes > 0, summary["filler_words"] / minutes.where(minutes > 0), np.nan
        )
        return summary.drop(columns="duration_seconds")

    def _category(self, event_types: pd.Series) -> pd.Series:
        categories = self.event_types.set_index("event_type")["category"]
        return event_types.map(categories).fillna("unknown")

    def kpi_weekly_trends(self) -> pd.DataFrame:
        attempts = self.attempts.assign(week=_week_start(self.attempts["started_at"]))
        events = self.events.merge(
            attempts[["org_id", "attempt_id", "week"]], on=["org_id", "attempt_id"], how="inner"
        )
        trends = (
            events.groupby(["org_id", "week", "event_type"])
            .agg(event_count=("event_id", "size"), attempts_with_event=("attempt_id", "nunique"))
            .reset_index()
        )
        trends["category"] = self._category(trends["event_type"])
        return trends

    def kpi_event_heatmap(self) -> pd.DataFrame:
        events = self.events.assign(
            minute_offset=(self.events["timestamp_ms"] // 60000).astype(int)
        )
        heatmap = (
            events.groupby(["org_id", "event_type", "minute_offset"])
            .size()
            .rename("events")
            .reset_index()
        )
        heatmap["category"] = self._category(heatmap["event_type"])
        return heatmap


def _ids(db, table: str, column: str) -> set[str]:
    return {str(row[0]) for row in db.query(f"select distinct {column} from raw.{table}")}


@pytest.fixture(scope="module")
def reference(built_warehouse, generated_data: Path) -> Reference:
    streams = {
        stream: read_stream(generated_data, stream, _ids(built_warehouse, stream, KEYS[stream]))
        for stream in KEYS
    }
    events = streams["kpi_events"]
    events["kind"] = [_json_object(v).get("kind") for v in events["event_value"]]
    event_types = pd.read_csv(ROOT / "seeds" / "event_types.csv")
    return Reference(
        streams["orgs"], streams["users"], streams["attempts"], events, event_types
    )


# --------------------------------------------------------------------------- comparison


def _normalise(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        stamp = pd.Timestamp(value)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _same(actual: Any, expected: Any) -> bool:
    actual, expected = _normalise(actual), _normalise(expected)
    if actual is None or expected is None:
        return actual is None and expected is None
    if isinstance(actual, float) or isinstance(expected, float):
        return abs(float(actual) - float(expected)) <= TOLERANCE * max(1.0, abs(float(expected)))
    return actual == expected


def assert_matches(actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str],
                   columns: list[str]) -> None:
    """Same key set; every column equal (floats within 1e-6, relative above 1)."""
    actual = actual.copy()
    expected = expected.copy()
    for frame in (actual, expected):
        for key in keys:
            frame[key] = frame[key].map(_normalise).map(str)
    assert not actual.duplicated(keys).any(), "duplicate keys in the mart"
    merged = actual.merge(expected, on=keys, how="outer", suffixes=("_a", "_e"), indicator=True)
    missing = merged[merged["_merge"] == "right_only"][keys].head(5).to_dict("records")
    extra = merged[merged["_merge"] == "left_only"][keys].head(5).to_dict("records")
    assert not missing and not extra, f"rows missing from mart: {missing}; unexpected: {extra}"
    assert len(merged) > 0
    for column in columns:
        bad = [
            (tuple(row[k] for k in keys), row[f"{column}_a"], row[f"{column}_e"])
            for _, row in merged.iterrows()
            if not _same(row[f"{column}_a"], row[f"{column}_e"])
        ]
        assert not bad, f"{column}: {len(bad)} rows differ, e.g. {bad[:3]}"


# --------------------------------------------------------------------------- tests


CASES = {
    "mv_leaderboard_month": (
        ["org_id", "user_id", "month"],
        ["avg_score", "attempts", "total_duration", "avg_talk_percentage", "rank"],
    ),
    "mv_org_overview": (
        ["org_id"],
        ["active_users", "total_attempts", "avg_score", "last_activity", "attempts_this_week",
         "attempts_this_month"],
    ),
    "mv_scenario_insights": (
        ["org_id", "scenario_id"],
        ["attempt_count", "avg_score", "score_stddev", "avg_duration", "median_score",
         "last_attempted"],
    ),
    "leaderboards": (
        ["org_id", "period_type", "period_start", "user_id"],
        ["team", "attempts", "avg_score", "rank", "dense_rank", "percent_rank", "previous_rank",
         "rank_change", "is_current_period"],
    ),
    "team_weekly_digest": (
        ["org_id", "team", "week_start"],
        ["active_users", "attempts", "completed_attempts", "completion_rate", "avg_score",
         "is_current_week"],
    ),
    "kpi_attempt_summary": (
        ["attempt_id"],
        ["org_id", "user_id", "scenario_id", "filler_words", "filler_words_per_minute",
         "interruptions", "questions_asked", "open_questions", "objections_raised",
         "keywords_mentioned", "long_pauses"],
    ),
    "kpi_weekly_trends": (
        ["org_id", "week", "event_type"],
        ["category", "event_count", "attempts_with_event"],
    ),
    "kpi_event_heatmap": (
        ["org_id", "event_type", "minute_offset"],
        ["category", "events"],
    ),
}


@pytest.mark.parametrize("table", sorted(CASES))
def test_mart_matches_recomputation(built_warehouse, reference: Reference, table: str) -> None:
    keys, columns = CASES[table]
    actual = built_warehouse.frame(f"select * from marts.{table}")
    expected = getattr(reference, table)()
    assert_matches(actual, expected, keys, columns)


def test_team_digest_performers(built_warehouse, reference: Reference) -> None:
    """top_performers / bottom_performers: the same users in the same order, same figures."""
    actual = built_warehouse.frame(
        "select org_id::text as org_id, team, week_start, top_performers, bottom_performers"
        " from marts.team_weekly_digest"
    )
    expected = reference.team_weekly_digest()
    expected["org_id"] = expected["org_id"].map(str)
    merged = actual.merge(expected, on=["org_id", "team", "week_start"], suffixes=("_a", "_e"))
    assert len(merged) == len(actual) == len(expected)
    for _, row in merged.iterrows():
        for kind in ("top_performers", "bottom_performers"):
            got, want = row[f"{kind}_a"], row[f"{kind}_e"]
            assert [p["user_id"] for p in got] == [p["user_id"] for p in want], kind
            assert [p["position"] for p in got] == list(range(1, len(want) + 1))
            for mine, theirs in zip(got, want, strict=True):
                assert _same(mine["avg_score"], theirs["avg_score"])
                assert mine["attempts"] == theirs["attempts"]
                assert mine["name"] == (None if pd.isna(theirs["name"]) else theirs["name"])


def test_generated_data_exercises_the_marts(built_warehouse, reference: Reference) -> None:
    """The comparison means something: ties, re-deliveries, unknown types and windows occur."""
    overview = built_warehouse.frame("select attempts_this_week, attempts_this_month"
                                     " from marts.mv_org_overview")
    assert overview["attempts_this_week"].sum() > 0
    assert (overview["attempts_this_month"] >= overview["attempts_this_week"]).all()
    assert (reference.attempts["status"] != "completed").any()
    heatmap = built_warehouse.frame("select category from marts.kpi_event_heatmap")
    assert "unknown" in set(heatmap["category"]), "generated data should carry a new event type"
    previous = built_warehouse.frame(
        "select count(*) filter (where previous_rank is not null) as n from marts.leaderboards"
    )
    assert previous["n"].iloc[0] > 0


def test_facts_keep_unknown_references(built_warehouse, reference: Reference) -> None:
    """Every event is in the fact, whether or not its attempt is known; occurred_at is
    resolved from the attempt where the file left it empty."""
    facts = built_warehouse.frame(
        "select id::text as event_id, occurred_at, occurred_at_source from marts.fact_kpi_events"
    )
    assert set(facts["event_id"]) == set(reference.events["event_id"])
    events = reference.events.merge(
        reference.attempts[["org_id", "attempt_id", "started_at"]],
        on=["org_id", "attempt_id"], how="left",
    )
    resolved = events["occurred_at"].fillna(
        events["started_at"] + pd.to_timedelta(events["timestamp_ms"], unit="ms")
    )
    expected = pd.DataFrame({"event_id": events["event_id"], "expected": resolved})
    merged = facts.merge(expected, on="event_id")
    for got, want in zip(merged["occurred_at"], merged["expected"], strict=True):
        assert _same(got, want)
    unresolved = (events["occurred_at"].isna() & events["started_at"].isna()).sum()
    assert (facts["occurred_at_source"] == "unresolved").sum() == unresolved
