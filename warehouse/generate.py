"""Deterministic, realistic synthetic raw inputs for the training-analytics warehouse.

``generate`` writes every raw stream (orgs, users, scenarios, attempts, sessions, kpi_events)
into a folder in the formats the loaders accept, plus ``manifest.json`` describing each file.
Entities are generated with numpy; files are serialised column-wise with pyarrow, and the
big streams chunk by chunk, so 10 million KPI events never exist as Python objects.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import itertools
import json
import math
import pathlib
import unicodedata
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loaders.streams import (
    ATTEMPTS,
    INTEGER,
    JSON_ARRAY,
    JSON_OBJECT,
    KNOWN_EVENT_TYPES,
    NUMBER,
    SCENARIOS,
    SESSIONS,
    TEXT,
    TIMESTAMP,
    UUID,
    Column,
    Stream,
)
from loaders.streams import STREAMS as DECLARED_STREAMS
from warehouse.metrics import voice_metrics

STREAMS = tuple(DECLARED_STREAMS)  # in dependency order
FORMATS = ("mixed", "csv", "jsonl", "parquet")

# how each column is written: its declared kind (loaders/streams.py), except free-text
# columns, which may need quoting, and two columns the platform writes more precisely
Schema = tuple[tuple[str, str], ...]
_ENCODINGS = {
    UUID: "token", TEXT: "token", TIMESTAMP: "ts", NUMBER: "float", INTEGER: "int",
    JSON_ARRAY: "list", JSON_OBJECT: "json",
}
_FREE_TEXT = {"name", "email", "team", "title"}
_WRITTEN_AS = {("attempts", "duration_seconds"): "int", ("kpi_events", "occurred_at"): "tsms"}


def _encoding(stream: Stream, column: Column) -> str:
    if (stream.name, column.name) in _WRITTEN_AS:
        return _WRITTEN_AS[(stream.name, column.name)]
    if column.kind == TEXT and column.name in _FREE_TEXT:
        return "str"
    return _ENCODINGS[column.kind]


SCHEMAS: dict[str, Schema] = {
    stream.name: tuple((column.name, _encoding(stream, column)) for column in stream.columns)
    for stream in DECLARED_STREAMS.values()
}
ID_COLUMN = {stream.name: stream.key for stream in DECLARED_STREAMS.values()}
BAD_KINDS: dict[str, tuple[str, ...]] = {
    "users": ("bad_role",),
    "scenarios": ("bad_difficulty",),
    "attempts": (
        "score_out_of_range",
        "bad_status",
        "ended_before_started",
        "bad_timestamp",
        "missing_user_id",
        "bad_uuid",
    ),
    "sessions": (
        "missing_user_id",
        "bad_timestamp",
        "bad_uuid",
        "metric_out_of_range",
        "bad_session_type",
    ),
    "kpi_events": (
        "negative_timestamp_ms",
        "bad_event_value_json",
        "bad_uuid",
        "missing_user_id",
        "bad_timestamp",
    ),
}
KINDS_NOT_IN_FORMAT = {"parquet": {"bad_timestamp"}, "jsonl": {"bad_event_value_json"}}
MIXED_LAYOUT = {
    "attempts": ("csv", "parquet"),
    "sessions": ("jsonl", "jsonl.gz"),
    "kpi_events": ("csv", "csv.gz", "parquet"),
}
MIN_CHUNKS = {"attempts": 2, "sessions": 2, "kpi_events": 3}
MAX_ROWS_PER_FILE = 1_000_000
TEXT_BATCH_ROWS = 200_000

ORGS_PER_SCALE = 3
USERS_PER_SCALE = 60
MIN_USERS_PER_ORG = 4
MIN_EVENTS_PER_SCALE = 100_000
SPAN_DAYS = 183
BAD_ROW_RATE = 0.001
REDELIVERY_RATE = 0.01
SCHEMA_VERSION = "1.0.0"

EPOCH = dt.date(1970, 1, 1)
DAY_S = 86_400
DAY_MS = 86_400_000
NULL = np.iinfo(np.int64).min


def _listed(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(","))


ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Asia/Tokyo",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
    "",
)
ZONE_WEIGHTS = (0.16, 0.11, 0.16, 0.08, 0.09, 0.08, 0.1, 0.08, 0.07, 0.07)
LOOKBACK_DAYS = 420

STYLE_NAIVE = 4
STYLE_BAD = 5
_STYLE_SUFFIX = pa.array(["Z", "+01:00", "-03:00", "+05:30", "", "Z"])
_STYLE_OFFSET_MS = np.array([0, 3_600_000, -10_800_000, 19_800_000, 0, 0], dtype=np.int64)
_BAD_TIMESTAMPS = ("not-a-timestamp", "2025-02-30T25:61:00Z", "yesterday at 5pm", "13/45/2025")
_BAD_JSON = ('{"word": "um"', "{kind: open}", "not json")

ORG_NAMES = _listed(
    "Northwind Sales, Contoso Learning, Globex Corporation, Initech, Umbrella Health, "
    "Acme Language School, Stark Logistics, Wayne Financial, Hooli, Vandelay Imports, "
    "Soylent Foods, Tyrell Systems"
)
PLANS = ("free", "starter", "pro", "enterprise")
PLAN_WEIGHTS = (0.15, 0.3, 0.35, 0.2)
FIRST_NAMES = _listed(
    "Ana, Morgan, Lee, Priya, Kenji, Sofia, Lukas, Amara, Mateo, Chloé, Jürgen, Aiko, "
    "Olivia, Noah, Fatima, Diego, Hannah, Ravi, Zoë, Siobhán, Tomás, Yuki, Emma, Liam, "
    "Grace, Omar, Ingrid, Camila, Wei, Elif"
)
LAST_NAMES = _listed(
    "Souza, Lee, Müller, Nakamura, Patel, García, O'Brien, Schmidt, Kowalski, Dubois, "
    "Rossi, Andersson, Okafor, Tanaka, Silva, Novak, Fischer, Haddad, Nguyen, Johansson, "
    "Costa, Ivanova, Kim, Byrne, Moreau, Yilmaz"
)
TEAMS = ("East", "West", "North", "South", "Enterprise", "SMB", "EMEA", "APAC", "Partners")
SCENARIO_TEMPLATES = (
    ("Cold call: price objection", "objection-handling"),
    ("Cold call: not interested", "objection-handling"),
    ("Discovery call with a CFO", "discovery"),
    ("Discovery call: IT buyer", "discovery"),
    ("Renewal negotiation", "negotiation"),
    ("Upsell to the premium plan", "negotiation"),
    ("Handling an angry customer", "customer-service"),
    ("Refund request", "customer-service"),
    ("Product demo follow-up", "presentation"),
    ("Quarterly business review", "presentation"),
    ("Ordering at a restaurant", "language-basics"),
    ("Hotel check-in", "language-basics"),
    ("Job interview: tell me about yourself", "interviewing"),
    ("Small talk at a conference", "small-talk"),
)
DIFFICULTIES = SCENARIOS.column("difficulty").allowed or ()
DIFFICULTY_WEIGHTS = (0.3, 0.45, 0.25)
DIFFICULTY_SCORE_SHIFT = np.array([7.0, 0.0, -9.0])

# the declared statuses in the order of the weights and of the indices below
STATUSES = ("completed", "abandoned", "started")
if set(STATUSES) != set(ATTEMPTS.column("status").allowed or ()):
    raise ValueError("generate.STATUSES differs from the declared attempt statuses")
STATUS_WEIGHTS = (0.86, 0.10, 0.04)
COMPLETED, ABANDONED, STARTED = 0, 1, 2
SESSION_TYPES = SESSIONS.column("session_type").allowed or ()
ROLEPLAY = 2
IMPROVING, PLATEAU, DECLINING, VOLATILE = 0, 1, 2, 3
ARCHETYPE_WEIGHTS = (0.4, 0.25, 0.17, 0.18)
STREAK_TIMES_S = np.array([21 * 3600 + 1800, 20 * 3600, 22 * 3600, 7 * 3600 + 900])
STREAK_TIME_WEIGHTS = (0.5, 0.2, 0.15, 0.15)

SALES_TOPICS = _listed(
    "pricing, objections, discovery, closing, negotiation, product demo, renewal, onboarding"
)
LANGUAGE_TOPICS = _listed("travel, hotels, restaurants, work, family, shopping, health, hobbies")
VOCABULARY = _listed(
    "reservation, available, discount, budget, deadline, invoice, schedule, appointment, "
    "recommend, confirm, delivery, warranty"
)
FOCUS_AREAS = _listed(
    "pace, filler words, past tense, prepositions, intonation, pausing, volume, clarity, "
    "confidence, objection handling, closing questions, articles"
)
METADATA = (
    "{}",
    '{"device":"web"}',
    '{"device":"web","browser":"chrome","mic":"headset"}',
    '{"device":"ios","app_version":"4.2.1"}',
    '{"device":"android","app_version":"4.1.0"}',
    '{"device":"web","browser":"firefox","mic":"builtin","noise_suppression":true}',
)

@dataclass(frozen=True)
class _MetricSpec:
    column: str
    base_low: float
    base_high: float
    ideal: float | None
    gain: float
    sd: float
    volatile_sd: float
    low: float
    high: float


# how each voice metric (seeds/metric_definitions.csv) is drawn: a user's base between
# base_low and base_high, drifting towards `ideal` or by `gain` with skill, day-to-day sd
# (volatile learners: volatile_sd), clipped to [low, high]
_METRIC_DRAWS = {
    "pace": (105, 185, 140, 0, 5, 18, 95, 200),
    "pitch": (95, 240, None, 15, 5, 20, 85, 265),
    "volume": (-32, -12, -20, 0, 1.2, 6, -38, -8),
    "pauses": (2.5, 10, None, -9, 0.5, 2.5, 0.8, 12.5),
    "clarity": (45, 85, None, 60, 3, 15, 0, 100),
    "confidence": (35, 80, None, 70, 4, 18, 0, 100),
}


def _metric_specs() -> tuple[_MetricSpec, ...]:
    metrics = voice_metrics()
    undrawn = [
        metric.name for metric in metrics
        if metric.name not in _METRIC_DRAWS or metric.name not in FEEDBACK_MESSAGES
    ]
    if undrawn:
        raise ValueError(
            f"no distribution or feedback in warehouse/generate.py for metric(s) {undrawn}"
        )
    for metric in metrics:
        SESSIONS.column(metric.value_column)  # a column of raw.sessions, else KeyError
    return tuple(
        _MetricSpec(metric.value_column, *_METRIC_DRAWS[metric.name]) for metric in metrics
    )


METRIC_NULL_RATE = 0.03

# the known types, then one the warehouse does not know (kept as it is)
EVENT_TYPES = (*KNOWN_EVENT_TYPES, "sentiment_shift")
NON_FILLER_WEIGHTS = np.array([0.12, 0.22, 0.10, 0.20, 0.12, 0.13, 0.10, 0.001])
FILLERS = ("um", "uh", "like", "you know", "basically", "actually", "so")
FILLER_WEIGHTS = (0.3, 0.25, 0.15, 0.1, 0.08, 0.07, 0.05)
KEYWORDS = _listed(
    "pricing, ROI, discount, budget, timeline, integration, security, contract, renewal, "
    "onboarding, support, decision maker"
)
FEEDBACK_MESSAGES = {
    "pace": (("Good pace", "Nice steady pace"), ("Slow down a little", "You are rushing")),
    "pitch": (("Good vocal variety", "Pleasant pitch"), ("Vary your pitch", "Monotone delivery")),
    "volume": (("Good volume", "Clear and audible"), ("Speak up", "Lower your voice a little")),
    "pauses": (("Good use of pauses", "Natural pauses"), ("Too many pauses", "Pause less often")),
    "clarity": (("Very clear", "Crisp articulation"), ("Articulate more", "Words run together")),
    "confidence": (("Sounds confident", "Assertive tone"), ("Sound more sure", "Avoid hedging")),
}
METRICS = tuple(metric.name for metric in voice_metrics())
METRIC_SPECS = _metric_specs()
PRIORITIES = ("high", "medium", "low")
PRIORITY_WEIGHTS = (0.3, 0.45, 0.25)
LONG_PAUSE_STEPS = 121
SPACING = 1 << 32


def generate(
    out_dir: pathlib.Path,
    scale: float = 1.0,
    seed: int = 42,
    formats: str = "mixed",
    bad_rows: bool = True,
    redeliveries: bool = True,
    as_of: dt.date | None = None,
) -> dict[str, int]:
    """Write a synthetic data set into ``out_dir``; return the good data rows per stream.

    Files are named after their stream (``orgs.csv``, ``attempts_0001.csv``,
    ``kpi_events_0002.csv.gz``, ``users_9001_redelivery.csv``, ...); ``manifest.json`` lists
    each with its good rows, bad rows and bad-row kinds. Files listed by a previous
    manifest in ``out_dir`` are removed first. Data span about six months before ``as_of``
    (default: today, UTC); the same arguments always give the same bytes.
    """
    _validate(scale, seed, formats)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_previous_output(out)
    clock = _make_clock(as_of or dt.datetime.now(dt.UTC).date())
    world = _build_world(seed, scale, clock)
    output = _Output(out, seed, bad_rows)
    _write_world(output, world, formats)
    if redeliveries:
        _write_redeliveries(output, world, formats, _rng(seed, 90), clock)
    _write_manifest(output, world, clock, scale, formats, redeliveries)
    return dict(output.totals)


def _validate(scale: float, seed: int, formats: str) -> None:
    if formats not in FORMATS:
        raise ValueError(f"formats must be one of {', '.join(FORMATS)}, not {formats!r}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {scale!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed!r}")


def _remove_previous_output(out: pathlib.Path) -> None:
    manifest = out / "manifest.json"
    if not manifest.exists():
        return
    for entry in json.loads(manifest.read_text()).get("files", []):
        (out / pathlib.Path(entry["file"]).name).unlink(missing_ok=True)
    manifest.unlink()


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


# --- time ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clock:
    as_of: dt.date
    end_day: int
    start_day: int
    cap_ms: int
    table_day0: int
    offsets: np.ndarray

    def offset_s(self, zone: np.ndarray, day: np.ndarray) -> np.ndarray:
        return self.offsets[zone, day - self.table_day0]

    def transitions(self, zone: int) -> np.ndarray:
        return np.flatnonzero(np.diff(self.offsets[zone]) != 0) + 1 + self.table_day0

    def last_change(self, zone: int) -> int | None:
        """The zone's latest clock change at least two weeks before as_of."""
        changes = self.transitions(zone)
        changes = changes[changes <= self.end_day - 14]
        return int(changes[-1]) if len(changes) else None

    def dst_zones(self) -> list[int]:
        """Zones with a clock change, the most recent change first."""
        latest = {z: self.last_change(z) for z in range(len(ZONES))}
        found = {z: day for z, day in latest.items() if day is not None}
        return sorted(found, key=lambda z: (-found[z], z))


def _make_clock(as_of: dt.date) -> _Clock:
    end_day = (as_of - EPOCH).days
    day0 = end_day - LOOKBACK_DAYS
    offsets = _offset_table(day0, LOOKBACK_DAYS + 2)
    probe = _Clock(as_of, end_day, end_day, 0, day0, offsets)
    zones = probe.dst_zones()
    latest = probe.last_change(zones[0]) if zones else None
    span = SPAN_DAYS if latest is None else max(SPAN_DAYS, end_day - latest + 21)
    return _Clock(as_of, end_day, end_day - span + 1, (end_day + 1) * DAY_MS, day0, offsets)


def _offset_table(day0: int, n_days: int) -> np.ndarray:
    table = np.zeros((len(ZONES), n_days), dtype=np.int64)
    for z, name in enumerate(ZONES):
        zone = ZoneInfo(name or "UTC")
        for i in range(n_days):
            noon = dt.datetime.combine(EPOCH + dt.timedelta(days=day0 + i), dt.time(12), zone)
            table[z, i] = int((noon.utcoffset() or dt.timedelta()).total_seconds())
    return table


def _rare_count(n: int, rate: float) -> int:
    return min(n, max(1, round(n * rate))) if n else 0


def _rare(rng: np.random.Generator, candidates: np.ndarray, rate: float) -> np.ndarray:
    """A mask choosing ``rate`` of the candidate rows, and at least one when there is any."""
    pool = np.flatnonzero(candidates)
    mask = np.zeros(len(candidates), dtype=bool)
    mask[rng.choice(pool, _rare_count(len(pool), rate), replace=False)] = True
    return mask


def _styles(rng: np.random.Generator, n: int, offset_rate: float, naive_rate: float) -> np.ndarray:
    shifted, naive = _rare_count(n, offset_rate), _rare_count(n, naive_rate)
    rows = rng.choice(n, min(n, shifted + naive), replace=False)
    style = np.zeros(n, dtype=np.int8)
    style[rows[:shifted]] = rng.integers(1, 4, len(rows[:shifted]))
    style[rows[shifted:]] = STYLE_NAIVE
    return style


# --- identifiers -------------------------------------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_BASE62 = np.frombuffer(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8
)
_UUID_SLOTS = ((0, 8, 0), (9, 13, 8), (14, 18, 12), (19, 23, 16), (24, 36, 20))


def _fixed_strings(chars: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars, dtype=np.uint8)
    nulls = None if valid is None or valid.all() else np.packbits(valid, bitorder="little")
    bitmap = None if nulls is None else pa.py_buffer(nulls)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap)


def _uuids(rng: np.random.Generator, n: int) -> pa.Array:
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = np.empty((n, 32), dtype=np.uint8)
    hexed[:, 0::2] = _HEX[raw >> 4]
    hexed[:, 1::2] = _HEX[raw & 0x0F]
    chars = np.full((n, 36), ord("-"), dtype=np.uint8)
    for start, stop, source in _UUID_SLOTS:
        chars[:, start:stop] = hexed[:, source : source + stop - start]
    return _fixed_strings(chars)


def _uuid_objects(rng: np.random.Generator, n: int) -> np.ndarray:
    return _uuids(rng, n).to_numpy(zero_copy_only=False)


def _user_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    chars = np.empty((n, 32), dtype=np.uint8)
    chars[:, :6] = np.frombuffer(b"user_2", dtype=np.uint8)
    chars[:, 6:] = _BASE62[rng.integers(0, len(_BASE62), (n, 26))]
    return _fixed_strings(chars).to_numpy(zero_copy_only=False)


def _fresh_ids(stream: str, rng: np.random.Generator, n: int) -> np.ndarray:
    return _user_ids(rng, n) if stream == "users" else _uuid_objects(rng, n)


# --- the simulated world -----------------------------------------------------------------


@dataclass
class _Orgs:
    ids: np.ndarray
    names: list[str]
    domains: list[str]
    table: pa.Table


@dataclass
class _People:
    ids: np.ndarray
    org: np.ndarray
    tz: np.ndarray
    role: np.ndarray
    team: np.ndarray
    manager: np.ndarray
    practises: np.ndarray
    streaker: np.ndarray
    archetype: np.ndarray
    s0: np.ndarray
    delta: np.ndarray
    rate: np.ndarray
    p_day: np.ndarray
    pref_s: np.ndarray
    join_day: np.ndarray
    end_day: np.ndarray
    base: np.ndarray
    talk: np.ndarray
    weak_metric: np.ndarray
    showcase: np.ndarray
    table: pa.Table


@dataclass
class _Scenarios:
    ids: np.ndarray
    org_first: np.ndarray
    org_count: np.ndarray
    difficulty: np.ndarray
    table: pa.Table


@dataclass
class _Attempts:
    ids: np.ndarray
    session_ids: np.ndarray
    user: np.ndarray
    org: np.ndarray
    scenario_ids: np.ndarray
    status: np.ndarray
    skill: np.ndarray
    start: np.ndarray
    dur_s: np.ndarray
    n_events: np.ndarray
    table: pa.Table


@dataclass
class _KpiPlan:
    attempt_id: pa.Array
    session_id: pa.Array
    org_id: pa.Array
    user_id: pa.Array
    scenario_id: pa.Array
    start_ms: np.ndarray
    dur_ms: np.ndarray
    n_events: np.ndarray
    filler_p: np.ndarray
    open_p: np.ndarray
    implemented_p: np.ndarray
    weak_metric: np.ndarray

    @property
    def total(self) -> int:
        return int(self.n_events.sum())


@dataclass
class _World:
    orgs: _Orgs
    people: _People
    scenarios: _Scenarios
    attempts: _Attempts
    sessions: pa.Table
    kpi: _KpiPlan
    orphans: dict[str, int] = field(default_factory=dict)


def _build_world(seed: int, scale: float, clock: _Clock) -> _World:
    n_orgs = max(1, round(ORGS_PER_SCALE * scale))
    n_users = max(MIN_USERS_PER_ORG * n_orgs, round(USERS_PER_SCALE * scale))
    orgs = _make_orgs(_rng(seed, 1), n_orgs, clock)
    people = _make_people(_rng(seed, 2), orgs, n_users, clock)
    scenarios = _make_scenarios(_rng(seed, 3), orgs, clock)
    user, day, start = _schedule(_rng(seed, 4), people, clock)
    attempts = _make_attempts(_rng(seed, 5), people, scenarios, orgs, (user, day, start), clock)
    _top_up_events(_rng(seed, 6), attempts, math.ceil(MIN_EVENTS_PER_SCALE * scale))
    sessions, ghosts = _make_sessions(_rng(seed, 7), people, orgs, attempts, clock)
    world = _World(orgs, people, scenarios, attempts, sessions, _kpi_plan(people, orgs, attempts))
    world.orphans = {
        "attempts_with_unknown_scenario": 2,
        "sessions_with_unknown_user": ghosts,
        "kpi_events_with_unknown_attempt": ORPHAN_EVENTS,
    }
    return world


def _table(
    stream: str, columns: dict[str, Any], style: np.ndarray, schema: Schema | None = None
) -> pa.Table:
    schema = schema or SCHEMAS[stream]
    arrays = [_arrow(kind, columns[name]) for name, kind in schema]
    names = [name for name, _ in schema]
    return pa.table([*arrays, pa.array(style, type=pa.int8())], names=[*names, "_style"])


_ARROW_TYPES = {
    "str": pa.string(),
    "token": pa.string(),
    "json": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "ts": pa.timestamp("ms", tz="UTC"),
    "tsms": pa.timestamp("ms", tz="UTC"),
    "list": pa.list_(pa.string()),
}
_JSON_TYPES = {
    "str": "string",
    "token": "string",
    "json": "object",
    "int": "integer",
    "float": "number",
    "ts": "timestamp",
    "tsms": "timestamp",
    "list": "array<string>",
}
_TS_KINDS = ("ts", "tsms")
_QUOTABLE_KINDS = ("str", "json", "list")
_QUOTED_JSON_KINDS = ("str", "token", *_TS_KINDS)


def _arrow(kind: str, values: Any) -> pa.Array:
    typ = _ARROW_TYPES[kind]
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.cast(typ)
    if kind in ("int", *_TS_KINDS):
        ints = np.asarray(values, dtype=np.int64)
        return pa.array(ints, mask=ints == NULL).cast(typ)
    if kind == "float":
        return pa.array(np.asarray(values, dtype=np.float64), from_pandas=True)
    return pa.array(values, type=typ)


def _arrow_schema(schema: Schema) -> pa.Schema:
    fields = [pa.field(name, _ARROW_TYPES[kind]) for name, kind in schema]
    return pa.schema([*fields, pa.field("_style", pa.int8())])


def _random_times(rng: np.random.Generator, n: int, first_day: int, last_day: int) -> np.ndarray:
    days = rng.integers(first_day, max(first_day + 1, last_day), n)
    return (days * DAY_S + rng.integers(7 * 3600, 19 * 3600, n)) * 1000


def _make_orgs(rng: np.random.Generator, n: int, clock: _Clock) -> _Orgs:
    ids = _uuid_objects(rng, n)
    names = [
        ORG_NAMES[i % len(ORG_NAMES)]
        + ("" if i < len(ORG_NAMES) else f" {i // len(ORG_NAMES) + 1}")
        for i in range(n)
    ]
    domains = [
        "".join(ch for ch in name.lower() if ch.isalnum()) + ".example.com" for name in names
    ]
    created = _random_times(rng, n, clock.start_day - 400, clock.start_day - 30)
    updated = created + rng.integers(0, 60, n) * DAY_MS
    columns = {
        "org_id": ids,
        "name": names,
        "plan": np.array(PLANS)[rng.choice(4, n, p=PLAN_WEIGHTS)],
        "created_at": created,
        "updated_at": updated,
    }
    return _Orgs(ids, names, domains, _table("orgs", columns, np.zeros(n, np.int8)))


def _make_people(rng: np.random.Generator, orgs: _Orgs, n_users: int, clock: _Clock) -> _People:
    n_orgs = len(orgs.ids)
    weights = rng.dirichlet(np.full(n_orgs, 2.0))
    sizes = rng.multinomial(n_users - MIN_USERS_PER_ORG * n_orgs, weights) + MIN_USERS_PER_ORG
    ids = _user_ids(rng, n_users)
    org = np.repeat(np.arange(n_orgs), sizes)
    role, team, manager = _org_charts(rng, ids, sizes)
    tz = rng.choice(len(ZONES), n_users, p=ZONE_WEIGHTS)
    names, emails = _names(rng, org, orgs.domains)
    practises = (role == "trainee") | ((role == "manager") & (rng.random(n_users) < 0.6))
    streaker = practises & (rng.random(n_users) < 0.3)
    archetype = rng.choice(4, n_users, p=ARCHETYPE_WEIGHTS)
    join_day, end_day = _activity_spans(rng, n_users, clock)
    showcase = _first_trainees(role, sizes)
    zones = clock.dst_zones() or [int(tz[0])]
    tz[showcase] = [zones[i % len(zones)] for i in range(int(showcase.sum()))]
    practises[showcase], streaker[showcase] = True, True
    join_day[showcase], end_day[showcase] = clock.start_day, clock.end_day
    created, updated = _account_times(rng, role, join_day, clock)
    table = _table(
        "users",
        {
            "user_id": ids,
            "org_id": orgs.ids[org],
            "name": names,
            "email": emails,
            "role": role,
            "team": team,
            "manager_id": manager,
            "timezone": [ZONES[z] or None for z in tz],
            "created_at": created,
            "updated_at": updated,
        },
        _styles(rng, n_users, 0.03, 0.02),
    )
    return _People(
        ids=ids,
        org=org,
        tz=tz,
        role=role,
        team=team,
        manager=manager,
        practises=practises,
        streaker=streaker,
        archetype=archetype,
        s0=np.clip(rng.normal(0.5, 0.13, n_users), 0.15, 0.85),
        delta=_skill_deltas(rng, archetype),
        rate=rng.uniform(0.5, 4.0, n_users),
        p_day=rng.uniform(0.2, 0.6, n_users),
        pref_s=rng.uniform(8, 20, n_users) * 3600,
        join_day=join_day,
        end_day=end_day,
        base=_metric_bases(rng, n_users),
        talk=rng.uniform(0.35, 0.7, n_users),
        weak_metric=rng.integers(0, 6, n_users),
        showcase=showcase,
        table=table,
    )


def _org_charts(
    rng: np.random.Generator, ids: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(ids)
    role = np.full(n, "trainee", dtype=object)
    team = np.full(n, None, dtype=object)
    manager = np.full(n, None, dtype=object)
    first = 0
    for size in sizes:
        n_mgr = max(1, round(size / 9))
        managers = np.arange(first + 1, first + 1 + n_mgr)
        trainees = np.arange(first + 1 + n_mgr, first + size)
        role[first] = "admin"
        role[managers] = "manager"
        team[managers] = [_team_name(i) for i in range(n_mgr)]
        boss = managers[rng.integers(0, n_mgr, len(trainees))]
        assigned = rng.random(len(trainees)) >= 0.08
        team[trainees[assigned]] = team[boss[assigned]]
        manager[trainees[assigned]] = ids[boss[assigned]]
        first += size
    return role, team, manager


def _first_trainees(role: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """One daily practiser per organisation whose streaks are guaranteed to reach as_of and
    to cross the latest clock change, so even tiny data sets exercise streaks and DST."""
    mask = np.zeros(len(role), dtype=bool)
    first = 0
    for size in sizes:
        trainees = np.flatnonzero(role[first : first + size] == "trainee")
        mask[first + trainees[:1]] = True
        first += size
    return mask


def _team_name(i: int) -> str:
    return TEAMS[i % len(TEAMS)] + ("" if i < len(TEAMS) else f" {i // len(TEAMS) + 1}")


def _names(
    rng: np.random.Generator, org: np.ndarray, domains: list[str]
) -> tuple[list[str], list[str]]:
    firsts = rng.integers(0, len(FIRST_NAMES), len(org))
    lasts = rng.integers(0, len(LAST_NAMES), len(org))
    reversed_order = rng.random(len(org)) < 0.05
    names, emails, seen = [], [], set()
    for i, (f, la) in enumerate(zip(firsts, lasts, strict=True)):
        first, last = FIRST_NAMES[f], LAST_NAMES[la]
        names.append(f"{last}, {first}" if reversed_order[i] else f"{first} {last}")
        local = f"{_ascii(first)}.{_ascii(last)}"
        email = f"{local}@{domains[org[i]]}"
        suffix = 2
        while email in seen:
            email, suffix = f"{local}{suffix}@{domains[org[i]]}", suffix + 1
        seen.add(email)
        emails.append(email)
    return names, emails


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _activity_spans(
    rng: np.random.Generator, n: int, clock: _Clock
) -> tuple[np.ndarray, np.ndarray]:
    span = clock.end_day - clock.start_day + 1
    early = clock.start_day + rng.integers(0, 20, n)
    later = clock.start_day + rng.integers(0, span - 21, n)
    late = clock.end_day - rng.integers(10, 30, n)
    u = rng.random(n)
    join = np.where(u < 0.6, early, np.where(u < 0.95, later, late))
    churn_at = join + 14 + (rng.random(n) * np.maximum(0, clock.end_day - 8 - join - 14))
    churned = (rng.random(n) < 0.2) & (join + 14 < clock.end_day - 8)
    return join, np.where(churned, churn_at.astype(np.int64), clock.end_day)


def _account_times(
    rng: np.random.Generator, role: np.ndarray, join_day: np.ndarray, clock: _Clock
) -> tuple[np.ndarray, np.ndarray]:
    n = len(role)
    staff = role != "trainee"
    first_day = np.where(staff, np.minimum(join_day, clock.start_day), join_day)
    lead = np.where(staff, rng.integers(10, 90, n), rng.integers(1, 30, n))
    created = ((first_day - lead) * DAY_S + rng.integers(8 * 3600, 18 * 3600, n)) * 1000
    updated = np.minimum(created + rng.integers(0, 5 * DAY_S, n) * 1000, clock.cap_ms - 2 * DAY_MS)
    return created, np.maximum(created, updated)


def _skill_deltas(rng: np.random.Generator, archetype: np.ndarray) -> np.ndarray:
    n = len(archetype)
    return np.select(
        [archetype == IMPROVING, archetype == PLATEAU, archetype == DECLINING],
        [rng.uniform(0.12, 0.4, n), rng.uniform(0.0, 0.06, n), rng.uniform(0.08, 0.3, n)],
        0.0,
    )


def _metric_bases(rng: np.random.Generator, n: int) -> np.ndarray:
    lows = np.array([spec.base_low for spec in METRIC_SPECS])
    highs = np.array([spec.base_high for spec in METRIC_SPECS])
    return rng.uniform(lows, highs, (n, len(METRIC_SPECS)))


def _make_scenarios(rng: np.random.Generator, orgs: _Orgs, clock: _Clock) -> _Scenarios:
    n_orgs = len(orgs.ids)
    counts = rng.integers(6, 13, n_orgs)
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    templates = np.concatenate(
        [rng.choice(len(SCENARIO_TEMPLATES), c, replace=False) for c in counts]
    )
    n = len(templates)
    difficulty = rng.choice(3, n, p=DIFFICULTY_WEIGHTS)
    ids = _uuid_objects(rng, n)
    created = _random_times(rng, n, clock.start_day - 120, clock.start_day - 1)
    columns = {
        "scenario_id": ids,
        "org_id": orgs.ids[np.repeat(np.arange(n_orgs), counts)],
        "title": [SCENARIO_TEMPLATES[t][0] for t in templates],
        "difficulty": np.array(DIFFICULTIES)[difficulty],
        "category": [SCENARIO_TEMPLATES[t][1] for t in templates],
        "created_at": created,
        "updated_at": created + rng.integers(0, 10, n) * DAY_MS,
    }
    table = _table("scenarios", columns, np.zeros(n, np.int8))
    return _Scenarios(ids, firsts, counts, difficulty, table)


# --- practice schedule -------------------------------------------------------------------


def _schedule(
    rng: np.random.Generator, people: _People, clock: _Clock
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    users, days, secs = [], [], []
    for u in np.flatnonzero(people.practises):
        plan = _streak_days if people.streaker[u] else _sporadic_days
        d, s = plan(rng, people, int(u), clock)
        users.append(np.full(len(d), u))
        days.append(d)
        secs.append(s)
    user = np.concatenate([*users, np.zeros(0, np.int64)]).astype(np.int64)
    day = np.concatenate([*days, np.zeros(0, np.int64)]).astype(np.int64)
    sec = np.concatenate([*secs, np.zeros(0, np.int64)]).astype(np.int64)
    start = (day * DAY_S + sec - clock.offset_s(people.tz[user], day)) * 1000
    order = np.argsort(start, kind="stable")
    return user[order], day[order], start[order]


def _streak_days(
    rng: np.random.Generator, people: _People, u: int, clock: _Clock
) -> tuple[np.ndarray, np.ndarray]:
    join, end = int(people.join_day[u]), int(people.end_day[u])
    span = np.arange(join, end + 1)
    active = rng.random(len(span)) < 0.1

    def mark(first: int, last: int) -> None:
        active[max(first, join) - join : max(min(last, end) - join + 1, 0)] = True

    current = rng.random() < 0.65 or bool(people.showcase[u])
    if end == clock.end_day and current:
        last = end - int(rng.random() < 0.3)
        mark(last - int(rng.integers(9, 60)), last)
    changes = clock.transitions(int(people.tz[u]))
    changes = changes[(changes >= join + 5) & (changes <= end - 5)]
    if len(changes):
        mark(
            int(changes[-1]) - int(rng.integers(7, 28)), int(changes[-1]) + int(rng.integers(7, 28))
        )
    length = int(rng.integers(8, 36))
    first = int(rng.integers(join, max(join + 1, end - length + 1)))
    mark(first, first + length - 1)
    days = span[active]
    slot = 0 if people.showcase[u] else rng.choice(len(STREAK_TIMES_S), p=STREAK_TIME_WEIGHTS)
    pref = STREAK_TIMES_S[slot]
    secs = pref + np.clip(np.round(rng.normal(0, 360, len(days))), -1200, 1200).astype(np.int64)
    twice = rng.random(len(days)) < 0.15
    later = secs[twice] + rng.integers(1500, 3000, int(twice.sum()))
    return np.concatenate([days, days[twice]]), np.concatenate([secs, later])


def _sporadic_days(
    rng: np.random.Generator, people: _People, u: int, clock: _Clock
) -> tuple[np.ndarray, np.ndarray]:
    span = np.arange(people.join_day[u], people.end_day[u] + 1)
    weekend = (span + 3) % 7 >= 5
    days = span[rng.random(len(span)) < people.p_day[u] * np.where(weekend, 0.5, 1.0)]
    per_day = 1 + rng.poisson(0.35, len(days))
    first = np.clip(rng.normal(people.pref_s[u], 5400, len(days)), 6 * 3600, 22.5 * 3600)
    rank = np.arange(per_day.sum()) - np.repeat(np.cumsum(per_day) - per_day, per_day)
    gap = rng.integers(1200, 3600, int(per_day.sum()))
    secs = np.repeat(first.astype(np.int64), per_day) + rank * gap
    return np.repeat(days, per_day), secs


def _skill(
    rng: np.random.Generator, people: _People, user: np.ndarray, progress: np.ndarray
) -> np.ndarray:
    arch, delta, rate = people.archetype[user], people.delta[user], people.rate[user]
    curve = (1 - np.exp(-rate * progress)) / (1 - np.exp(-rate))
    shift = np.select(
        [arch == IMPROVING, arch == PLATEAU, arch == DECLINING],
        [delta * curve, delta * np.minimum(1.0, progress / 0.15), -delta * progress],
        0.0,
    )
    noise = rng.normal(0, np.where(arch == VOLATILE, 0.12, 0.03))
    return np.clip(people.s0[user] + shift + noise, 0.02, 0.98)


# --- attempts ------------------------------------------------------------------------------


def _make_attempts(
    rng: np.random.Generator,
    people: _People,
    scen: _Scenarios,
    orgs: _Orgs,
    schedule: tuple[np.ndarray, np.ndarray, np.ndarray],
    clock: _Clock,
) -> _Attempts:
    user, day, start = schedule
    n = len(user)
    org = people.org[user]
    span = np.maximum(1, people.end_day[user] - people.join_day[user])
    skill = _skill(rng, people, user, np.clip((day - people.join_day[user]) / span, 0, 1))
    status = rng.choice(3, n, p=STATUS_WEIGHTS)
    scenario = scen.org_first[org] + (rng.random(n) ** 1.7 * scen.org_count[org]).astype(np.int64)
    volatile = people.archetype[user] == VOLATILE
    raw_score = 100 * (0.3 + 0.62 * skill) + DIFFICULTY_SCORE_SHIFT[scen.difficulty[scenario]]
    score = np.round(np.clip(raw_score + rng.normal(0, np.where(volatile, 9, 4)), 0, 100), 1)
    n_events = 10 + np.minimum(90, np.round(rng.gamma(4.0, 7.5, n))).astype(np.int64)
    dur_s = np.where(
        status == COMPLETED,
        np.maximum(60, np.round(n_events * rng.uniform(5, 11, n) + rng.uniform(30, 120, n))),
        rng.integers(15, 240, n),
    ).astype(np.int64)
    end = start + dur_s * 1000
    updated = np.where(status == STARTED, start, end) + rng.integers(1, 30, n) * 1000
    keep = updated < clock.cap_ms
    status, n_events = status[keep], np.where(status == COMPLETED, n_events, 0)[keep]
    user, org, scenario, skill = user[keep], org[keep], scenario[keep], skill[keep]
    start, end, updated, dur_s, score = (
        start[keep],
        end[keep],
        updated[keep],
        dur_s[keep],
        score[keep],
    )
    n = len(user)
    ids = _uuid_objects(rng, n)
    session_ids = np.where(status == COMPLETED, _uuid_objects(rng, n), np.array(None, dtype=object))
    scenario_ids = _attempt_scenarios(rng, scen.ids[scenario], status)
    talk_ratio = np.clip(people.talk[user] + 0.1 * (skill - people.s0[user]), 0.1, 0.9)
    columns = {
        "attempt_id": ids,
        "org_id": orgs.ids[org],
        "user_id": people.ids[user],
        "scenario_id": scenario_ids,
        "status": np.array(STATUSES)[status],
        "score": np.where(status == COMPLETED, score, np.nan),
        "started_at": start,
        "ended_at": np.where(status == STARTED, NULL, end),
        "updated_at": updated,
        **_durations(rng, status, dur_s, talk_ratio),
    }
    table = _table("attempts", columns, _styles(rng, n, 0.004, 0.003))
    return _Attempts(
        ids, session_ids, user, org, scenario_ids, status, skill, start, dur_s, n_events, table
    )


def _attempt_scenarios(
    rng: np.random.Generator, scenario_ids: np.ndarray, status: np.ndarray
) -> np.ndarray:
    out = scenario_ids.copy()
    out[_rare(rng, np.ones(len(out), dtype=bool), 0.002)] = None
    completed = np.flatnonzero(status == COMPLETED)
    if len(completed) >= 2:
        out[rng.choice(completed, 2, replace=False)] = _uuid_objects(rng, 2)
    return out


def _durations(
    rng: np.random.Generator, status: np.ndarray, dur_s: np.ndarray, talk_ratio: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(status)
    total_ms = dur_s * 1000
    talk = np.round(total_ms * talk_ratio * rng.uniform(0.92, 1.0, n)).astype(np.int64)
    listen = np.round(total_ms * (1 - talk_ratio) * rng.uniform(0.92, 1.0, n)).astype(np.int64)
    silent = _rare(rng, status != STARTED, 0.005)
    talk[silent], listen[silent] = 0, 0
    shown = np.where(_rare(rng, status == COMPLETED, 0.003), 0, dur_s)
    started = status == STARTED
    return {
        "duration_seconds": np.where(started, NULL, shown),
        "talk_ms": np.where(started, NULL, talk),
        "listen_ms": np.where(started, NULL, listen),
    }


def _top_up_events(rng: np.random.Generator, attempts: _Attempts, target: int) -> None:
    counts = attempts.n_events
    deficit = target - int(counts.sum())
    while deficit > 0:
        room = np.flatnonzero((attempts.status == COMPLETED) & (counts < 100))
        if not len(room):
            return
        picked = rng.choice(room, min(deficit, len(room)), replace=False)
        counts[picked] += 1
        deficit -= len(picked)


# --- sessions ------------------------------------------------------------------------------


def _make_sessions(
    rng: np.random.Generator, people: _People, orgs: _Orgs, att: _Attempts, clock: _Clock
) -> tuple[pa.Table, int]:
    done = np.flatnonzero(att.status == COMPLETED)
    extra = np.flatnonzero((att.status != COMPLETED) | (rng.random(len(att.status)) < 0.15))
    src = np.concatenate([done, extra])
    n_x = len(extra)
    start = np.concatenate(
        [att.start[done], att.start[extra] + rng.integers(1200, 3000, n_x) * 1000]
    )
    dur = np.concatenate([att.dur_s[done], rng.integers(180, 900, n_x)]) * 1000
    kind = np.concatenate([np.full(len(done), ROLEPLAY), rng.integers(0, 2, n_x)])
    ids = np.concatenate([att.session_ids[done], _uuid_objects(rng, n_x)])
    attempt_ids = np.concatenate([att.ids[done], np.full(n_x, None, dtype=object)])
    updated = start + dur + rng.integers(1, 60, len(src)) * 1000
    keep = updated < clock.cap_ms
    src, start, dur, kind, ids = src[keep], start[keep], dur[keep], kind[keep], ids[keep]
    attempt_ids, updated = attempt_ids[keep], updated[keep]
    n = len(src)
    user = att.user[src]
    skill = np.clip(att.skill[src] + np.where(kind == ROLEPLAY, 0, rng.normal(0, 0.02, n)), 0, 1)
    metrics = _voice_metrics(rng, people, user, skill)
    user_ids, ghosts = _with_ghost_users(rng, people.ids[user], kind)
    columns: dict[str, Any] = {
        "session_id": ids,
        "org_id": orgs.ids[att.org[src]],
        "user_id": user_ids,
        "attempt_id": attempt_ids,
        "session_type": np.array(SESSION_TYPES)[kind],
        "started_at": start,
        "duration_ms": dur,
        "updated_at": updated,
        "words_spoken": _words(rng, dur, metrics["pace_wpm"]),
        **_session_scores(rng, att, src, kind, skill),
        **metrics,
        **_session_lists(rng, kind),
        "metadata": np.array(METADATA)[rng.choice(len(METADATA), n)],
    }
    table = _table("sessions", columns, _styles(rng, n, 0.004, 0.003))
    return table.take(pa.array(np.argsort(start, kind="stable"))), ghosts


def _with_ghost_users(
    rng: np.random.Generator, user_ids: np.ndarray, kind: np.ndarray
) -> tuple[np.ndarray, int]:
    candidates = np.flatnonzero(kind != ROLEPLAY)
    ghosts = min(2, len(candidates))
    out = user_ids.copy()
    out[rng.choice(candidates, ghosts, replace=False)] = _user_ids(rng, ghosts)
    return out, ghosts


def _voice_metrics(
    rng: np.random.Generator, people: _People, user: np.ndarray, skill: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(user)
    gain = skill - people.s0[user]
    volatile = people.archetype[user] == VOLATILE
    out = {}
    for m, spec in enumerate(METRIC_SPECS):
        base = people.base[user, m]
        if spec.ideal is None:
            trend = spec.gain * gain
        else:
            trend = (spec.ideal - base) * np.clip(3 * gain, -1, 1)
        noise = rng.normal(0, np.where(volatile, spec.volatile_sd, spec.sd))
        value = np.round(np.clip(base + trend + noise, spec.low, spec.high), 1)
        value[rng.random(n) < METRIC_NULL_RATE] = np.nan
        out[spec.column] = value
    return out


def _words(rng: np.random.Generator, dur_ms: np.ndarray, pace: np.ndarray) -> np.ndarray:
    wpm = np.where(np.isnan(pace), 140.0, pace)
    return np.round(dur_ms / 60_000 * wpm * rng.uniform(0.45, 0.8, len(dur_ms))).astype(np.int64)


def _session_scores(
    rng: np.random.Generator, att: _Attempts, src: np.ndarray, kind: np.ndarray, skill: np.ndarray
) -> dict[str, np.ndarray]:
    n = len(src)
    roleplay = kind == ROLEPLAY
    own = np.clip(100 * (0.3 + 0.62 * skill) + rng.normal(0, 5, n), 0, 100)
    attempt_score = att.table.column("score").to_numpy()
    score = np.round(np.where(roleplay, attempt_score[src], own), 1)
    score[~roleplay & (rng.random(n) < 0.02)] = np.nan
    out = {"score": score}
    for column, shift, sd in (
        ("pronunciation_score", 2, 5),
        ("fluency_score", -3, 6),
        ("grammar_score", 1, 5),
    ):
        value = np.round(np.clip(score + rng.normal(shift, sd, n), 0, 100), 1)
        value[rng.random(n) < 0.02] = np.nan
        out[column] = value
    return out


def _session_lists(rng: np.random.Generator, kind: np.ndarray) -> dict[str, pa.Array]:
    roleplay = kind == ROLEPLAY
    return {
        "topics": _random_lists(rng, (LANGUAGE_TOPICS, SALES_TOPICS), roleplay, 1, 3),
        "vocabulary_learned": _random_lists(rng, (VOCABULARY, VOCABULARY), roleplay, 0, 4),
        "areas_to_improve": _random_lists(rng, (FOCUS_AREAS, FOCUS_AREAS), roleplay, 0, 3),
    }


def _random_lists(
    rng: np.random.Generator,
    vocabs: tuple[Sequence[str], Sequence[str]],
    second: np.ndarray,
    low: int,
    high: int,
) -> pa.Array:
    n = len(second)
    size = len(vocabs[0])
    lengths = rng.integers(low, high + 1, n)
    picks = np.argsort(rng.random((n, size)), axis=1)[:, :high]
    take = np.arange(high) < lengths[:, None]
    rows = np.broadcast_to(second[:, None], picks.shape)[take]
    flat = picks[take] + np.where(rows, size, 0)
    words = np.array([*vocabs[0], *vocabs[1]], dtype=object)[flat]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(words, pa.string()))


# --- KPI events ----------------------------------------------------------------------------

ORPHAN_EVENTS = 5


def _kpi_plan(people: _People, orgs: _Orgs, att: _Attempts) -> _KpiPlan:
    done = np.flatnonzero(att.status == COMPLETED)
    user = att.user[done]
    skill = att.skill[done]
    arch = people.archetype[user]
    return _KpiPlan(
        attempt_id=pa.array(att.ids[done], pa.string()),
        session_id=pa.array(att.session_ids[done], pa.string()),
        org_id=pa.array(orgs.ids[att.org[done]], pa.string()),
        user_id=pa.array(people.ids[user], pa.string()),
        scenario_id=pa.array(att.scenario_ids[done], pa.string()),
        start_ms=att.start[done],
        dur_ms=att.dur_s[done] * 1000,
        n_events=att.n_events[done],
        filler_p=np.clip(0.5 - 0.4 * skill, 0.05, 0.6),
        open_p=np.clip(0.25 + 0.55 * skill, 0.05, 0.95),
        implemented_p=np.select([arch == IMPROVING, arch == DECLINING], [0.65, 0.2], 0.4),
        weak_metric=people.weak_metric[user],
    )


def _value_catalog() -> tuple[pa.Array, np.ndarray]:
    blocks: list[list[dict[str, Any] | None]] = [
        [{"word": w} for w in FILLERS],
        [None],
        [{"kind": "open"}, {"kind": "closed"}],
        [None],
        [{"keyword": k} for k in KEYWORDS],
        [{"seconds": round(3 + 0.1 * i, 1)} for i in range(LONG_PAUSE_STEPS)],
        [
            {"metric": m, "message": msg, "severity": sev}
            for m in METRICS
            for sev, messages in zip(("info", "warning"), FEEDBACK_MESSAGES[m], strict=True)
            for msg in messages
        ],
        [
            {"metric": m, "priority": p, "implemented": done}
            for m in METRICS
            for p in PRIORITIES
            for done in (False, True)
        ],
        [{"from": "neutral", "to": "negative"}, {"from": "negative", "to": "positive"}],
    ]
    values = [
        None if v is None else json.dumps(v, separators=(",", ":")) for b in blocks for v in b
    ]
    starts = np.concatenate([[0], np.cumsum([len(b) for b in blocks])[:-1]])
    return pa.array(values, pa.string()), starts


_VALUES, _VALUE_STARTS = _value_catalog()


def _event_types(rng: np.random.Generator, filler_p: np.ndarray) -> np.ndarray:
    n = len(filler_p)
    cumulative = np.cumsum(NON_FILLER_WEIGHTS) / NON_FILLER_WEIGHTS.sum()
    other = 1 + np.minimum(np.searchsorted(cumulative, rng.random(n), side="right"), 7)
    return np.where(rng.random(n) < filler_p, 0, other)


def _event_values(
    rng: np.random.Generator, etype: np.ndarray, plan: _KpiPlan, att: np.ndarray
) -> pa.Array:
    n = len(etype)
    metric = np.where(rng.random(n) < 0.45, plan.weak_metric[att], rng.integers(0, 6, n))
    warning = (rng.random(n) < 0.35).astype(np.int64)
    implemented = (rng.random(n) < plan.implemented_p[att]).astype(np.int64)
    pause = np.minimum(LONG_PAUSE_STEPS - 1, np.round(rng.exponential(25, n))).astype(np.int64)
    offsets = np.stack(
        [
            rng.choice(len(FILLERS), n, p=FILLER_WEIGHTS),
            np.zeros(n, np.int64),
            (rng.random(n) >= plan.open_p[att]).astype(np.int64),
            np.zeros(n, np.int64),
            rng.integers(0, len(KEYWORDS), n),
            pause,
            (metric * 2 + warning) * 2 + rng.integers(0, 2, n),
            (metric * 3 + rng.choice(3, n, p=PRIORITY_WEIGHTS)) * 2 + implemented,
            rng.integers(0, 2, n),
        ]
    )
    index = _VALUE_STARTS[etype] + offsets[etype, np.arange(n)]
    return _VALUES.take(pa.array(index))


def _kpi_chunk(rng: np.random.Generator, plan: _KpiPlan, lo: int, hi: int) -> pa.Table:
    counts = plan.n_events[lo:hi]
    att = np.repeat(np.arange(lo, hi), counts)
    n = len(att)
    lane = (att - lo) * SPACING
    ts = np.sort(rng.integers(0, plan.dur_ms[att]) + lane) - lane
    etype = _event_types(rng, plan.filler_p[att])
    index = pa.array(att)
    occurred = np.where(rng.random(n) < 0.3, NULL, plan.start_ms[att] + ts)
    columns = {
        "event_id": _uuids(rng, n),
        "attempt_id": plan.attempt_id.take(index),
        "session_id": _null_some(rng, plan.session_id.take(index), 0.12),
        "org_id": plan.org_id.take(index),
        "user_id": plan.user_id.take(index),
        "scenario_id": _null_some(rng, plan.scenario_id.take(index), 0.04),
        "event_type": pa.array(EVENT_TYPES).take(pa.array(etype)),
        "event_value": _event_values(rng, etype, plan, att),
        "timestamp_ms": ts,
        "occurred_at": occurred,
    }
    return _table("kpi_events", columns, _styles(rng, n, 0.001, 0.001))


def _null_some(rng: np.random.Generator, values: pa.Array, rate: float) -> pa.Array:
    return pc.if_else(
        pa.array(rng.random(len(values)) < rate), pa.scalar(None, pa.string()), values
    )


def _with_orphans(rng: np.random.Generator, chunk: pa.Table) -> pa.Table:
    orphans = chunk.slice(0, min(ORPHAN_EVENTS, chunk.num_rows))
    n = orphans.num_rows
    replace = {
        "event_id": _uuids(rng, n),
        "attempt_id": pa.array(np.repeat(_uuid_objects(rng, 1), n), pa.string()),
        "session_id": pa.nulls(n, pa.string()),
    }
    for name, values in replace.items():
        orphans = orphans.set_column(orphans.schema.get_field_index(name), name, values)
    return pa.concat_tables([chunk, orphans])


def _chunk_bounds(counts: np.ndarray, n_chunks: int) -> list[tuple[int, int]]:
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1]) if len(cumulative) else 0
    targets = [round(total * k / n_chunks) for k in range(1, n_chunks)]
    cuts = [0, *(int(np.searchsorted(cumulative, t, side="right")) for t in targets), len(counts)]
    return list(itertools.pairwise(cuts))


def _n_chunks(stream: str, rows: int) -> int:
    return max(MIN_CHUNKS.get(stream, 1), math.ceil(rows / MAX_ROWS_PER_FILE))


# --- serialisation -------------------------------------------------------------------------


def _digit_table(count: int, width: int) -> np.ndarray:
    values = np.arange(count)
    powers = 10 ** np.arange(width - 1, -1, -1)
    return (48 + values[:, None] // powers % 10).astype(np.uint8)


def _time_table() -> np.ndarray:
    pairs = _digit_table(60, 2)
    secs = np.arange(DAY_S)
    out = np.full((DAY_S, 8), ord(":"), dtype=np.uint8)
    out[:, 0:2] = pairs[secs // 3600]
    out[:, 3:5] = pairs[secs // 60 % 60]
    out[:, 6:8] = pairs[secs % 60]
    return out


_TIME_OF_DAY = _time_table()
_MILLIS = _digit_table(1000, 3)


def _date_table(first_day: int, n_days: int) -> np.ndarray:
    text = np.datetime_as_string(np.arange(first_day, first_day + n_days).astype("datetime64[D]"))
    return np.frombuffer(text.astype("S10").tobytes(), dtype=np.uint8).reshape(n_days, 10)


def _iso_chars(ms: np.ndarray, millis: bool) -> np.ndarray:
    days, rem = np.divmod(ms, DAY_MS)
    secs, msec = np.divmod(rem, 1000)
    width = 24 if millis else 20
    out = np.empty((len(ms), width), dtype=np.uint8)
    if not len(ms):
        return out
    first = int(days.min())
    out[:, :10] = _date_table(first, int(days.max()) - first + 1)[days - first]
    out[:, 10] = ord("T")
    out[:, 11:19] = _TIME_OF_DAY[secs]
    if millis:
        out[:, 19] = ord(".")
        out[:, 20:23] = _MILLIS[msec]
    out[:, -1] = ord("Z")
    return out


def _ts_text(col: pa.Array, millis: bool, style: np.ndarray) -> pa.Array:
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    ms = pc.fill_null(col.cast(pa.int64()), 0).to_numpy()
    text = _fixed_strings(_iso_chars(ms, millis), valid)
    special = (style != 0) & valid
    if not special.any():
        return text
    rows = np.flatnonzero(special)
    return pc.replace_with_mask(text, pa.array(special), _styled_ts(ms[rows], style[rows], millis))


def _styled_ts(ms: np.ndarray, style: np.ndarray, millis: bool) -> pa.Array:
    """Timestamps rendered with a numeric UTC offset, without any offset, or unparseable."""
    local = _fixed_strings(_iso_chars(ms + _STYLE_OFFSET_MS[style], millis))
    bare = pc.utf8_slice_codeunits(local, 0, 23 if millis else 19)
    text = pc.binary_join_element_wise(bare, _STYLE_SUFFIX.take(pa.array(style)), "")
    bad = style == STYLE_BAD
    if not bad.any():
        return text
    junk = [_BAD_TIMESTAMPS[i % len(_BAD_TIMESTAMPS)] for i in range(int(bad.sum()))]
    return pc.replace_with_mask(text, pa.array(bad), pa.array(junk, pa.string()))


def _list_json(col: pa.Array) -> pa.Array:
    wrapped = pc.binary_join_element_wise('["', pc.binary_join(col, '","'), '"]', "")
    return pc.if_else(pc.equal(pc.list_value_length(col), 0), "[]", wrapped)


def _column_styles(style: np.ndarray, schema: Schema) -> dict[str, np.ndarray]:
    """Row styles per timestamp column: only the first styled column carries unparseable text,
    and ``updated_at`` is always written in UTC with ``Z``."""
    valid = np.where(style == STYLE_BAD, 0, style).astype(np.int8)
    styled = [name for name, kind in schema if kind in _TS_KINDS and name != "updated_at"]
    out = {name: valid for name in styled}
    if styled:
        out[styled[0]] = style
    out["updated_at"] = np.zeros_like(style)
    return out


def _texts(table: pa.Table, schema: Schema) -> list[pa.Array]:
    styles = _column_styles(table.column("_style").to_numpy(), schema)
    out = []
    for name, kind in schema:
        col = table.column(name).combine_chunks()
        if kind in _TS_KINDS:
            out.append(_ts_text(col, kind == "tsms", styles[name]))
        elif kind in ("int", "float"):
            out.append(pc.cast(col, pa.string()))
        elif kind == "list":
            out.append(_list_json(col))
        else:
            out.append(col)
    return out


def _csv_cell(text: pa.Array) -> pa.Array:
    needs = pc.match_substring_regex(text, '[,"\r\n]')
    if pc.any(needs).as_py():
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        text = pc.if_else(needs, quoted, text)
    return pc.fill_null(text, "")


def _json_field(name: str, kind: str, text: pa.Array) -> pa.Array:
    if kind == "str" and pc.any(pc.match_substring_regex(text, r'["\\]')).as_py():
        text = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    if kind in _QUOTED_JSON_KINDS:
        text = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(pc.binary_join_element_wise(f',"{name}":', text, ""), "")


def _buffer(lines: pa.Array) -> pa.Buffer:
    if len(lines) == 0:
        return pa.py_buffer(b"")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2].slice(first, last - first)


def _csv_header(schema: Schema, stream: str) -> bytes:
    return (",".join(name for name, _ in schema) + "\n").encode()


def _csv_lines(table: pa.Table, schema: Schema) -> pa.Buffer:
    cells = [
        _csv_cell(text) if kind in _QUOTABLE_KINDS else pc.fill_null(text, "")
        for (_, kind), text in zip(schema, _texts(table, schema), strict=True)
    ]
    cells[-1] = pc.binary_join_element_wise(cells[-1], "\n", "")
    return _buffer(pc.binary_join_element_wise(*cells, ","))


def _ndjson_header(schema: Schema, stream: str) -> bytes:
    record = {
        "_type": "schema",
        "_version": SCHEMA_VERSION,
        "_description": stream,
        "fields": [{"name": name, "type": _JSON_TYPES[kind]} for name, kind in schema],
    }
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


def _ndjson_lines(table: pa.Table, schema: Schema) -> pa.Buffer:
    fields = [
        _json_field(name, kind, text)
        for (name, kind), text in zip(schema, _texts(table, schema), strict=True)
    ]
    joined = pc.utf8_slice_codeunits(pc.binary_join_element_wise(*fields, ""), 1)
    return _buffer(pc.binary_join_element_wise("{", joined, "}\n", ""))


@contextlib.contextmanager
def _sink(path: pathlib.Path, compressed: bool) -> Iterator[BinaryIO]:
    with path.open("wb") as raw:
        if not compressed:
            yield raw
            return
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
            yield cast(BinaryIO, packed)


def _write_table(
    path: pathlib.Path, table: pa.Table, schema: Schema, fmt: str, stream: str
) -> None:
    if fmt == "parquet":
        pq.write_table(table.drop_columns(["_style"]), path, compression="snappy")
        return
    csv = fmt.startswith("csv")
    header, lines = (_csv_header, _csv_lines) if csv else (_ndjson_header, _ndjson_lines)
    with _sink(path, fmt.endswith(".gz")) as out:
        out.write(header(schema, stream))
        for start in range(0, table.num_rows, TEXT_BATCH_ROWS):
            batch = table.slice(start, TEXT_BATCH_ROWS)
            out.write(memoryview(lines(batch, schema)))


# --- bad rows ------------------------------------------------------------------------------


def _bad_rows(
    table: pa.Table, stream: str, kinds: tuple[str, ...], rng: np.random.Generator
) -> tuple[pa.Table, dict[str, int]]:
    if not kinds or table.num_rows == 0:
        return table.slice(0, 0), {}
    count = max(len(kinds), round(table.num_rows * BAD_ROW_RATE))
    rows = table.take(pa.array(rng.integers(0, table.num_rows, count))).to_pylist()
    fresh = _fresh_ids(stream, rng, count)
    tally: dict[str, int] = {}
    for i, row in enumerate(rows):
        kind = kinds[i % len(kinds)]
        row[ID_COLUMN[stream]] = fresh[i]
        _break_row(row, kind, stream, i)
        tally[kind] = tally.get(kind, 0) + 1
    return pa.Table.from_pylist(rows, schema=table.schema), dict(sorted(tally.items()))


def _break_row(row: dict[str, Any], kind: str, stream: str, i: int) -> None:
    match kind:
        case "score_out_of_range":
            row["score"] = 150.0
        case "bad_status":
            row["status"] = "finished"
        case "ended_before_started":
            row["status"], row["score"] = "abandoned", None
            row["ended_at"] = row["started_at"] - dt.timedelta(minutes=5)
        case "bad_timestamp":
            column = "occurred_at" if stream == "kpi_events" else "started_at"
            row[column] = row[column] or dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
            row["_style"] = STYLE_BAD
        case "missing_user_id":
            row["user_id"] = None
        case "bad_uuid":
            column = "session_id" if stream == "sessions" else "attempt_id"
            row[column] = ("not-a-uuid", "a1e7c3d9-2b4f-4a6c-8e0d", "12345")[i % 3]
        case "negative_timestamp_ms":
            row["timestamp_ms"] = -1500
        case "bad_event_value_json":
            row["event_value"] = _BAD_JSON[i % len(_BAD_JSON)]
        case "metric_out_of_range":
            row["clarity"] = 140.0
        case "bad_session_type":
            row["session_type"] = "lecture"
        case "bad_role":
            row["role"] = "superuser"
        case "bad_difficulty":
            row["difficulty"] = "extreme"


def _interleave(good: pa.Table, bad: pa.Table, rng: np.random.Generator) -> pa.Table:
    if bad.num_rows == 0:
        return good
    total = good.num_rows + bad.num_rows
    is_bad = np.zeros(total, dtype=bool)
    is_bad[rng.choice(total, bad.num_rows, replace=False)] = True
    order = np.empty(total, dtype=np.int64)
    order[~is_bad] = np.arange(good.num_rows)
    order[is_bad] = good.num_rows + np.arange(bad.num_rows)
    return pa.concat_tables([good, bad]).take(pa.array(order))


# --- output --------------------------------------------------------------------------------


@dataclass
class _Output:
    out_dir: pathlib.Path
    seed: int
    bad_rows: bool
    files: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))

    def emit(
        self,
        stream: str,
        filename: str,
        table: pa.Table,
        fmt: str,
        schema: Schema | None = None,
        redelivery: bool = False,
    ) -> None:
        schema = schema or SCHEMAS[stream]
        rng = _rng(self.seed, 99, zlib.crc32(filename.encode()))
        bad, tally = _bad_rows(table, stream, self._kinds(stream, fmt, redelivery), rng)
        _write_table(self.out_dir / filename, _interleave(table, bad, rng), schema, fmt, stream)
        self.files.append(
            {
                "file": filename,
                "stream": stream,
                "format": fmt,
                "rows": table.num_rows,
                "bad_rows": bad.num_rows,
                "bad_kinds": tally,
                "redelivery": redelivery,
            }
        )
        self.totals[stream] += table.num_rows

    def _kinds(self, stream: str, fmt: str, redelivery: bool) -> tuple[str, ...]:
        if not self.bad_rows or redelivery:
            return ()
        excluded = KINDS_NOT_IN_FORMAT.get(fmt.removesuffix(".gz"), set())
        return tuple(k for k in BAD_KINDS.get(stream, ()) if k not in excluded)


def _file_format(formats: str, stream: str, chunk: int) -> str:
    if formats != "mixed":
        return formats
    layout = MIXED_LAYOUT.get(stream, ("csv",))
    return layout[chunk] if chunk < len(layout) else layout[0]


def _write_world(output: _Output, world: _World, formats: str) -> None:
    for stream, table in (
        ("orgs", world.orgs.table),
        ("users", world.people.table),
        ("scenarios", world.scenarios.table),
    ):
        fmt = _file_format(formats, stream, 0)
        output.emit(stream, f"{stream}.{fmt}", table, fmt)
    for stream, table in (("attempts", world.attempts.table), ("sessions", world.sessions)):
        parts = np.array_split(np.arange(table.num_rows), _n_chunks(stream, table.num_rows))
        for i, rows in enumerate(parts):
            fmt = _file_format(formats, stream, i)
            chunk = table.slice(int(rows[0]), len(rows)) if len(rows) else table.slice(0, 0)
            output.emit(stream, f"{stream}_{i + 1:04d}.{fmt}", chunk, fmt)
    _write_kpi_events(output, world.kpi, formats)


def _write_kpi_events(output: _Output, plan: _KpiPlan, formats: str) -> None:
    bounds = _chunk_bounds(plan.n_events, _n_chunks("kpi_events", plan.total))
    for i, (lo, hi) in enumerate(bounds):
        rng = _rng(output.seed, 20, i)
        chunk = _kpi_chunk(rng, plan, lo, hi)
        if i == 0:
            chunk = _with_orphans(rng, chunk)
        fmt = _file_format(formats, "kpi_events", i)
        output.emit("kpi_events", f"kpi_events_{i + 1:04d}.{fmt}", chunk, fmt)


def _write_manifest(
    output: _Output, world: _World, clock: _Clock, scale: float, formats: str, redeliveries: bool
) -> None:
    manifest = {
        "generator": "warehouse.generate",
        "seed": output.seed,
        "scale": scale,
        "formats": formats,
        "as_of": clock.as_of.isoformat(),
        "data_start": (EPOCH + dt.timedelta(days=clock.start_day)).isoformat(),
        "bad_rows": output.bad_rows,
        "redeliveries": redeliveries,
        "totals": output.totals,
        "bad_row_totals": {
            s: sum(f["bad_rows"] for f in output.files if f["stream"] == s) for s in STREAMS
        },
        "distinct": {
            "orgs": len(world.orgs.ids),
            "users": len(world.people.ids),
            "scenarios": len(world.scenarios.ids),
            "attempts": world.attempts.table.num_rows,
            "completed_attempts": len(world.kpi.n_events),
            "sessions": world.sessions.num_rows,
            "kpi_events": world.kpi.total + world.orphans["kpi_events_with_unknown_attempt"],
        },
        "unknown_references": world.orphans,
        "files": output.files,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (output.out_dir / "manifest.json").write_text(text, encoding="utf-8")


# --- re-deliveries -------------------------------------------------------------------------


def _write_redeliveries(
    output: _Output, world: _World, formats: str, rng: np.random.Generator, clock: _Clock
) -> None:
    fmt = "csv" if formats == "mixed" else formats
    attempts_schema = (*SCHEMAS["attempts"], ("source_system", "str"))
    tables = (
        ("users", _redeliver_users(rng, world.people, clock), SCHEMAS["users"]),
        ("scenarios", _redeliver_scenarios(rng, world.scenarios, clock), SCHEMAS["scenarios"]),
        ("attempts", _redeliver_attempts(rng, world.attempts.table, clock), attempts_schema),
    )
    for stream, rows, schema in tables:
        table = pa.Table.from_pylist(rows, schema=_arrow_schema(schema))
        output.emit(stream, f"{stream}_9001_redelivery.{fmt}", table, fmt, schema, redelivery=True)


def _pick_rows(
    rng: np.random.Generator, table: pa.Table, eligible: np.ndarray, n: int
) -> list[dict[str, Any]]:
    candidates = np.flatnonzero(eligible)
    picked = np.sort(rng.choice(candidates, min(n, len(candidates)), replace=False))
    rows = table.take(pa.array(picked, pa.int64())).to_pylist()
    for row in rows:
        row["_style"] = 0
    return rows


def _updated_ms(table: pa.Table) -> np.ndarray:
    return table.column("updated_at").cast(pa.int64()).to_numpy()


def _later(rng: np.random.Generator, low_s: int, high_s: int) -> dt.timedelta:
    return dt.timedelta(seconds=int(rng.integers(low_s, high_s)))


def _redeliver_attempts(
    rng: np.random.Generator, table: pa.Table, clock: _Clock
) -> list[dict[str, Any]]:
    eligible = _updated_ms(table) < clock.cap_ms - 3 * DAY_MS
    newer = max(3, round(table.num_rows * REDELIVERY_RATE))
    rows = _pick_rows(rng, table, eligible, newer + 3)
    for i, row in enumerate(rows):
        row["source_system"] = "lms-resync"
        if i == len(rows) - 1:
            row["status"], row["score"] = "completed", 0.0
        elif i >= len(rows) - 3:
            row["status"], row["score"] = "abandoned", None
            row["updated_at"] -= _later(rng, 3600, 2 * DAY_S)
        else:
            _revise_attempt(rng, row)
    return rows


def _revise_attempt(rng: np.random.Generator, row: dict[str, Any]) -> None:
    if row["status"] == "completed":
        change = float(rng.uniform(2, 10)) * (1 if rng.random() < 0.5 else -1)
        row["score"] = round(min(100.0, max(0.0, row["score"] + change)), 1)
    else:
        seconds = (row["duration_seconds"] or 0) + int(rng.integers(20, 120))
        row["status"], row["duration_seconds"] = "abandoned", seconds
        row["ended_at"] = row["started_at"] + dt.timedelta(seconds=seconds)
        row["talk_ms"], row["listen_ms"] = seconds * 450, seconds * 500
    row["updated_at"] = max(row["updated_at"], row["ended_at"]) + _later(rng, 3600, 2 * DAY_S)


def _redeliver_users(
    rng: np.random.Generator, people: _People, clock: _Clock
) -> list[dict[str, Any]]:
    newer = max(2, round(len(people.ids) * 0.03))
    rows = _pick_rows(rng, people.table, np.ones(len(people.ids), dtype=bool), newer + 2)
    for i, row in enumerate(rows):
        if i == len(rows) - 1:
            row["team"] = "Shadow Team"
        elif i == len(rows) - 2:
            row["role"] = "admin"
            row["updated_at"] -= _later(rng, DAY_S, 30 * DAY_S)
        else:
            _revise_user(rng, row, people)
            row["updated_at"] += _later(rng, 3600, 36 * 3600)
    return rows


def _revise_user(rng: np.random.Generator, row: dict[str, Any], people: _People) -> None:
    u = int(np.flatnonzero(people.ids == row["user_id"])[0])
    peers = np.flatnonzero(
        (people.org == people.org[u])
        & (people.role == "manager")
        & (people.ids != row["manager_id"])
    )
    if row["role"] == "trainee" and len(peers):
        boss = int(rng.choice(peers))
        row["manager_id"], row["team"] = people.ids[boss], people.team[boss]
    else:
        zone = ZONES[int(rng.integers(0, len(ZONES) - 1))]
        row["timezone"] = zone if zone != row["timezone"] else "Europe/London"
        row["name"] = f"{row['name']}-Okafor"


def _redeliver_scenarios(
    rng: np.random.Generator, scen: _Scenarios, clock: _Clock
) -> list[dict[str, Any]]:
    newer = max(1, round(len(scen.ids) * 0.05))
    rows = _pick_rows(rng, scen.table, np.ones(len(scen.ids), dtype=bool), newer + 1)
    for i, row in enumerate(rows):
        if i == len(rows) - 1:
            row["title"] = "Outdated draft"
            row["updated_at"] -= _later(rng, DAY_S, 10 * DAY_S)
            continue
        levels = [d for d in DIFFICULTIES if d != row["difficulty"]]
        row["difficulty"] = levels[int(rng.integers(0, 2))]
        row["title"] = f"{row['title']} (revised)"
        row["updated_at"] += _later(rng, DAY_S, 60 * DAY_S)
    return rows
