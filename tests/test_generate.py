"""The synthetic data generator: contract encodings, counts, bad rows, realism (no database)."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse.generate import BAD_KINDS, STREAMS, generate

AS_OF = dt.date(2026, 11, 20)
SCALE = 0.2
SEED = 7
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
DST_ZONES = {
    "America/Los_Angeles",
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Sydney",
}
KNOWN_EVENTS = {
    "filler_word",
    "interruption",
    "question_asked",
    "objection_raised",
    "keyword_mentioned",
    "long_pause",
    "feedback_given",
    "recommendation_made",
}
METRIC_RANGES = {
    "pace_wpm": (95, 200),
    "pitch_hz": (85, 265),
    "volume_db": (-38, -8),
    "pauses_per_min": (0.8, 12.5),
    "clarity": (0, 100),
    "confidence": (0, 100),
}


@dataclass(frozen=True)
class DataSet:
    path: Path
    counts: dict[str, int]
    manifest: dict[str, Any]

    def files(self, stream: str, redelivery: bool | None = None) -> list[dict[str, Any]]:
        return [
            entry
            for entry in self.manifest["files"]
            if entry["stream"] == stream and redelivery in (None, entry["redelivery"])
        ]

    def frame(self, stream: str, redelivery: bool | None = None) -> pd.DataFrame:
        frames = [read_rows(self.path / entry["file"]) for entry in self.files(stream, redelivery)]
        return pd.concat(frames, ignore_index=True)


def make(path: Path, **options: Any) -> DataSet:
    counts = generate(path, scale=SCALE, seed=SEED, as_of=AS_OF, **options)
    return DataSet(path, counts, json.loads((path / "manifest.json").read_text()))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> DataSet:
    return make(tmp_path_factory.mktemp("mixed"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> DataSet:
    return make(tmp_path_factory.mktemp("clean"), bad_rows=False)


@pytest.fixture(scope="module")
def single_format(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DataSet]:
    return {
        fmt: make(tmp_path_factory.mktemp(fmt), formats=fmt, bad_rows=False, redeliveries=False)
        for fmt in ("csv", "jsonl", "parquet")
    }


# --- reading files back as text rows (None = NULL), whatever the format ----------------------


def open_text(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, list | dict | bool):
        return json.dumps(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def records(path: Path) -> Iterator[dict[str, Any]]:
    if path.name.endswith(".parquet"):
        yield from pq.read_table(path).to_pylist()
        return
    with open_text(path) as handle:
        if ".csv" in path.name:
            for row in csv.DictReader(handle):
                yield {key: value or None for key, value in row.items()}
            return
        for line in handle:
            record = json.loads(line)
            if record.get("_type") != "schema":
                yield record


def read_rows(path: Path) -> pd.DataFrame:
    rows = [{key: as_text(value) for key, value in row.items()} for row in records(path)]
    return pd.DataFrame(rows, dtype=object)


def instants(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")


def numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce")


def not_uuid(values: pd.Series) -> pd.Series:
    return ~values.fillna("").str.fullmatch(UUID)


def not_json_object(values: pd.Series) -> pd.Series:
    def broken(text: str | None) -> bool:
        try:
            return text is not None and not isinstance(json.loads(text), dict)
        except ValueError:
            return True

    return values.map(broken).astype(bool)


def unparseable(values: pd.Series) -> pd.Series:
    return values.notna() & instants(values).isna()


Check = Callable[[pd.DataFrame], pd.Series]
BAD_ROW_CHECKS: dict[str, dict[str, Check]] = {
    "users": {"bad_role": lambda f: ~f.role.isin(["trainee", "manager", "admin"])},
    "scenarios": {"bad_difficulty": lambda f: ~f.difficulty.isin(["easy", "medium", "hard"])},
    "attempts": {
        "score_out_of_range": lambda f: ~numbers(f.score).fillna(0).between(0, 100),
        "bad_status": lambda f: ~f.status.isin(["started", "completed", "abandoned"]),
        "ended_before_started": lambda f: instants(f.ended_at) < instants(f.started_at),
        "bad_timestamp": lambda f: unparseable(f.started_at),
        "missing_user_id": lambda f: f.user_id.isna(),
        "bad_uuid": lambda f: not_uuid(f.attempt_id),
    },
    "sessions": {
        "missing_user_id": lambda f: f.user_id.isna(),
        "bad_timestamp": lambda f: unparseable(f.started_at),
        "bad_uuid": lambda f: not_uuid(f.session_id),
        "metric_out_of_range": lambda f: ~numbers(f.clarity).fillna(0).between(0, 100),
        "bad_session_type": lambda f: (
            ~f.session_type.isin(["conversation", "pronunciation", "roleplay"])
        ),
    },
    "kpi_events": {
        "negative_timestamp_ms": lambda f: numbers(f.timestamp_ms) < 0,
        "bad_event_value_json": lambda f: not_json_object(f.event_value),
        "bad_uuid": lambda f: not_uuid(f.attempt_id),
        "missing_user_id": lambda f: f.user_id.isna(),
        "bad_timestamp": lambda f: unparseable(f.occurred_at),
    },
}


def found_bad_kinds(stream: str, frame: pd.DataFrame) -> dict[str, int]:
    found = {kind: int(check(frame).sum()) for kind, check in BAD_ROW_CHECKS[stream].items()}
    return {kind: n for kind, n in found.items() if n}


def current(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Newest version per key; on equal updated_at the first delivered one stays."""
    updated = instants(frame.updated_at)
    return frame.loc[updated.groupby(frame[key]).idxmax()].set_index(key)


# --- files, formats, manifest ----------------------------------------------------------------


def test_every_stream_is_written_and_named_by_its_prefix(mixed: DataSet) -> None:
    assert list(mixed.counts) == list(STREAMS)
    assert all(mixed.counts[stream] > 0 for stream in STREAMS)
    for entry in mixed.manifest["files"]:
        assert entry["file"].startswith(entry["stream"])
        assert (mixed.path / entry["file"]).is_file()
    assert {entry["stream"] for entry in mixed.manifest["files"]} == set(STREAMS)


def test_manifest_counts_match_the_files(mixed: DataSet) -> None:
    for entry in mixed.manifest["files"]:
        rows = len(read_rows(mixed.path / entry["file"]))
        assert rows == entry["rows"] + entry["bad_rows"], entry["file"]
    for stream in STREAMS:
        assert mixed.counts[stream] == sum(entry["rows"] for entry in mixed.files(stream))
    assert mixed.manifest["totals"] == mixed.counts


def test_mixed_formats_cover_every_encoding(mixed: DataSet) -> None:
    names = [entry["file"] for entry in mixed.manifest["files"]]
    for suffix in (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".parquet"):
        assert any(name.endswith(suffix) for name in names), suffix
    for name in names:
        if ".jsonl" in name:
            with open_text(mixed.path / name) as handle:
                schema = json.loads(handle.readline())
            assert schema["_type"] == "schema" and schema["_version"].startswith("1.")
    with (mixed.path / "orgs.csv").open(encoding="utf-8") as handle:
        assert handle.readline() == "org_id,name,plan,created_at,updated_at\n"


def test_single_formats_hold_the_same_data(single_format: dict[str, DataSet]) -> None:
    counts = {fmt: data.counts for fmt, data in single_format.items()}
    assert counts["csv"] == counts["jsonl"] == counts["parquet"]
    for fmt, data in single_format.items():
        for entry in data.manifest["files"]:
            assert entry["file"].endswith(f".{fmt}") and "redelivery" not in entry["file"]
            assert entry["bad_rows"] == 0


def test_parquet_uses_native_types(single_format: dict[str, DataSet]) -> None:
    data = single_format["parquet"]
    sessions = pq.read_schema(data.path / data.files("sessions")[0]["file"])
    assert sessions.field("started_at").type == pa.timestamp("ms", tz="UTC")
    assert sessions.field("topics").type == pa.list_(pa.string())
    assert sessions.field("metadata").type == pa.string()
    events = pq.read_schema(data.path / data.files("kpi_events")[0]["file"])
    assert events.field("event_value").type == pa.string()
    assert events.field("timestamp_ms").type == pa.int64()


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    first, second = make(tmp_path / "a"), make(tmp_path / "b")
    assert first.counts == second.counts
    for name in [entry["file"] for entry in first.manifest["files"]] + ["manifest.json"]:
        assert (first.path / name).read_bytes() == (second.path / name).read_bytes(), name
    generate(tmp_path / "c", scale=SCALE, seed=SEED + 1, as_of=AS_OF)
    for name in ("orgs.csv", "kpi_events_0001.csv"):
        assert (tmp_path / "c" / name).read_bytes() != (first.path / name).read_bytes()


def test_regenerating_replaces_the_previous_files(tmp_path: Path) -> None:
    generate(tmp_path, scale=SCALE, seed=SEED, as_of=AS_OF)
    generate(tmp_path, scale=SCALE, seed=SEED, as_of=AS_OF, formats="csv")
    names = {path.name for path in tmp_path.iterdir()}
    listed = {
        entry["file"] for entry in json.loads((tmp_path / "manifest.json").read_text())["files"]
    }
    assert names == listed | {"manifest.json"}


def test_small_scale_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    generate(tmp_path, scale=SCALE, seed=1, formats="csv", as_of=AS_OF)
    assert time.perf_counter() - start < 5


def test_scale_one_is_a_small_demo(tmp_path: Path) -> None:
    counts = generate(tmp_path, scale=1, formats="csv", bad_rows=False, redeliveries=False)
    assert counts["orgs"] == 3
    assert 50 <= counts["users"] <= 80
    assert 2_000 <= counts["attempts"] <= 6_000
    assert 100_000 <= counts["kpi_events"] <= 150_000


def test_rejects_unknown_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="formats"):
        generate(tmp_path, formats="xml")
    with pytest.raises(ValueError, match="scale"):
        generate(tmp_path, scale=0)


# --- bad rows and re-deliveries ---------------------------------------------------------------


def test_bad_rows_are_the_promised_kinds(mixed: DataSet) -> None:
    for stream, kinds in BAD_KINDS.items():
        promised: set[str] = set()
        for entry in mixed.files(stream):
            frame = read_rows(mixed.path / entry["file"])
            assert found_bad_kinds(stream, frame) == entry["bad_kinds"], entry["file"]
            assert sum(entry["bad_kinds"].values()) == entry["bad_rows"]
            promised |= set(entry["bad_kinds"])
        assert promised == set(kinds), stream


def test_bad_rows_are_a_small_share(mixed: DataSet) -> None:
    for stream in ("attempts", "kpi_events"):
        bad = sum(entry["bad_rows"] for entry in mixed.files(stream))
        assert 0 < bad <= max(len(BAD_KINDS[stream]) * 3, 0.002 * mixed.counts[stream])


def test_clean_data_has_no_bad_rows(clean: DataSet) -> None:
    for stream in BAD_KINDS:
        for entry in clean.files(stream):
            assert entry["bad_rows"] == 0
            assert found_bad_kinds(stream, read_rows(clean.path / entry["file"])) == {}


def test_redeliveries_carry_newer_and_stale_versions(clean: DataSet) -> None:
    for stream, key in (("attempts", "attempt_id"), ("users", "user_id")):
        original = clean.frame(stream, redelivery=False).set_index(key)
        again = clean.frame(stream, redelivery=True).set_index(key)
        assert set(again.index) <= set(original.index)
        before = instants(original.loc[again.index, "updated_at"])
        after = instants(again.updated_at)
        assert (after > before).sum() >= 2, stream
        assert (after < before).sum() >= 1, stream
        assert (after == before).sum() >= 1, stream
        columns = [c for c in original.columns if c != "updated_at"]
        changed = again[columns].fillna("") != original.loc[again.index, columns].fillna("")
        assert changed.any(axis=1).all(), stream
    assert "source_system" in clean.frame("attempts", redelivery=True).columns


# --- realism -----------------------------------------------------------------------------------


def test_kpi_events_per_completed_attempt(clean: DataSet) -> None:
    attempts = current(clean.frame("attempts"), "attempt_id")
    completed = attempts.index[attempts.status == "completed"]
    per_attempt = clean.frame("kpi_events").attempt_id.value_counts()
    counts = per_attempt.reindex(completed, fill_value=0)
    assert counts.between(10, 100).all()
    assert 30 <= counts.mean() <= 55
    unknown = per_attempt[~per_attempt.index.isin(attempts.index)]
    assert 0 < unknown.sum() <= 10
    assert not per_attempt.index.isin(attempts.index[attempts.status != "completed"]).any()


def test_event_values_have_the_documented_shapes(clean: DataSet) -> None:
    events = clean.frame("kpi_events")
    values = events.event_value.map(lambda text: json.loads(text) if text else None)
    by_type = dict(tuple(values.groupby(events.event_type)))
    assert set(by_type) >= KNOWN_EVENTS
    unknown = events.event_type[~events.event_type.isin(KNOWN_EVENTS)]
    assert 0 < len(unknown) < 0.01 * len(events)
    assert all(isinstance(v["word"], str) for v in by_type["filler_word"])
    assert {v["kind"] for v in by_type["question_asked"]} == {"open", "closed"}
    assert all(v["keyword"] for v in by_type["keyword_mentioned"])
    assert all(3 <= v["seconds"] <= 15 for v in by_type["long_pause"])
    metrics = {"pace", "pitch", "volume", "pauses", "clarity", "confidence"}
    feedback = by_type["feedback_given"]
    assert {v["metric"] for v in feedback} == metrics
    assert {v["severity"] for v in feedback} == {"info", "warning"}
    advice = by_type["recommendation_made"]
    assert {v["priority"] for v in advice} == {"high", "medium", "low"}
    assert {v["implemented"] for v in advice} == {True, False}


def test_event_times_fall_inside_their_attempt(clean: DataSet) -> None:
    attempts = current(clean.frame("attempts"), "attempt_id")
    events = clean.frame("kpi_events")
    events = events[events.attempt_id.isin(attempts.index)].reset_index(drop=True)
    started = instants(attempts.started_at).reindex(events.attempt_id).reset_index(drop=True)
    ended = instants(attempts.ended_at).reindex(events.attempt_id).reset_index(drop=True)
    offset = pd.to_timedelta(numbers(events.timestamp_ms), unit="ms")
    assert (offset >= pd.Timedelta(0)).all()
    assert (started + offset <= ended).all()
    present = events.occurred_at.notna()
    assert 0.1 < 1 - present.mean() < 0.5
    assert (instants(events.occurred_at)[present] == (started + offset)[present]).all()


def test_entities_look_like_the_platform(clean: DataSet) -> None:
    users = clean.frame("users", redelivery=False)
    assert set(users.role) == {"trainee", "manager", "admin"}
    managers = users[users.role == "manager"].set_index("user_id")
    managed = users[users.manager_id.notna()]
    assert managed.manager_id.isin(managers.index).all()
    assert (managers.loc[managed.manager_id, "org_id"].to_numpy() == managed.org_id).all()
    assert users.timezone.nunique() >= 5
    scenarios = clean.frame("scenarios", redelivery=False)
    assert set(scenarios.difficulty) == {"easy", "medium", "hard"}
    attempts = clean.frame("attempts", redelivery=False)
    assert set(attempts.status) == {"started", "completed", "abandoned"}
    assert attempts.score[attempts.status != "completed"].isna().all()
    assert ((attempts.talk_ms == "0") & (attempts.listen_ms == "0")).any()
    assert (attempts.duration_seconds[attempts.status == "completed"] == "0").any()


def test_sessions_carry_scores_metrics_and_lists(clean: DataSet) -> None:
    sessions = clean.frame("sessions")
    assert set(sessions.session_type) == {"conversation", "pronunciation", "roleplay"}
    roleplay = sessions.session_type == "roleplay"
    assert sessions.attempt_id[roleplay].notna().all()
    assert sessions.attempt_id[~roleplay].isna().all()
    for column, (low, high) in METRIC_RANGES.items():
        values = numbers(sessions[column])
        assert values.dropna().between(low, high).all(), column
        assert 0 < values.isna().sum() < 0.1 * len(values), column
    for column in ("topics", "vocabulary_learned", "areas_to_improve"):
        assert sessions[column].map(lambda text: isinstance(json.loads(text), list)).all()
    assert sessions.metadata.map(lambda text: isinstance(json.loads(text), dict)).all()


def test_activity_reaches_as_of_and_spans_months(clean: DataSet) -> None:
    attempts = clean.frame("attempts", redelivery=False)
    started = instants(attempts.started_at)
    end = pd.Timestamp(AS_OF + dt.timedelta(days=1), tz="UTC")
    assert (started < end).all()
    assert (started >= end - pd.Timedelta(days=7)).sum() > 10
    assert (started >= end - pd.Timedelta(days=30)).sum() > (
        started >= end - pd.Timedelta(days=7)
    ).sum()
    assert (end - started.min()).days >= 150


def test_timestamps_come_in_every_iso_style(clean: DataSet) -> None:
    stamps = read_rows(clean.path / "attempts_0001.csv").started_at
    assert stamps.str.endswith("Z").mean() > 0.95
    assert stamps.str.contains(r"[+-]\d\d:\d\d$").any()
    assert stamps.str.contains(r"T\d\d:\d\d:\d\d$").any()


def local_sessions(data: DataSet) -> pd.DataFrame:
    users = data.frame("users", redelivery=False).set_index("user_id")
    sessions = data.frame("sessions")
    sessions = sessions[sessions.user_id.isin(users.index)]
    zones = users.timezone.fillna("UTC").reindex(sessions.user_id).to_numpy()
    started = instants(sessions.started_at)
    local = [t.tz_convert(zone) for t, zone in zip(started, zones, strict=True)]
    return pd.DataFrame(
        {
            "user_id": sessions.user_id.to_numpy(),
            "zone": zones,
            "date": [t.date() for t in local],
            "hour": [t.hour for t in local],
            "offset": [t.utcoffset() for t in local],
        }
    )


def runs(dates: list[dt.date]) -> Iterator[list[dt.date]]:
    run: list[dt.date] = []
    for day in sorted(set(dates)):
        if run and day - run[-1] != dt.timedelta(days=1):
            yield run
            run = []
        run.append(day)
    if run:
        yield run


def test_daily_streaks_cross_a_dst_change_and_reach_as_of(clean: DataSet) -> None:
    local = local_sessions(clean)
    crossing, current_streaks = [], []
    for user, rows in local.groupby("user_id"):
        for run in runs(list(rows.date)):
            in_run = rows[rows.date.isin(run)]
            first_hours = in_run.sort_values("hour").groupby("date").hour.first()
            if len(run) >= 10 and in_run.offset.nunique() > 1 and rows.zone.iloc[0] in DST_ZONES:
                crossing.append((user, (first_hours == first_hours.mode()[0]).mean()))
            if len(run) >= 7 and run[-1] >= AS_OF - dt.timedelta(days=1):
                current_streaks.append(user)
    assert any(share >= 0.8 for _, share in crossing)
    assert current_streaks
