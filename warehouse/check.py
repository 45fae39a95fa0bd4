"""`warehouse check`: the data-quality suite and its human-readable report.

Three parts, each reported check by check with a severity:
1. `dbt test`: every generic and singular test of the project (schema tests, completeness
   tests in tests/dbt/quality, contract tests); a failing `error` test fails the check, a
   `warn` test is reported.
2. `dbt source freshness`: how long ago the last file was loaded (raw.load_ledger).
3. A Great Expectations suite on the marts and the export views: ranges, nulls,
   uniqueness and row-count parity of each export view with its fact.

Then `dbt docs generate --static` and the GX Data Docs write HTML under the dbt target
folder (`target/` unless DBT_TARGET_PATH says otherwise). The check fails (exit status 1)
when an error-severity check fails; warnings are printed only.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from warehouse.dbt_runner import run_dbt, target_path
from warehouse.metrics import metric_names

ERROR = "error"
WARN = "warn"


@dataclass
class Outcome:
    """One check's result. status: pass | warn | fail (an error-severity failure) | skip."""

    part: str
    name: str
    status: str
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


@dataclass
class CheckReport:
    outcomes: list[Outcome] = field(default_factory=list)
    docs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def part(self, name: str) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.part == name]

    @property
    def errors(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.failed]

    @property
    def warnings(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "warn"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        lines = [f"warehouse check: database {os.environ.get('PGDATABASE', '?')}"]
        for part in dict.fromkeys(outcome.part for outcome in self.outcomes):
            outcomes = self.part(part)
            counts = {
                status: sum(1 for outcome in outcomes if outcome.status == status)
                for status in ("pass", "warn", "fail", "skip")
            }
            figures = f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed"
            if counts["skip"]:
                figures += f", {counts['skip']} skipped"
            lines.append(f"  {part:<22} {figures}")
            for outcome in outcomes:
                if outcome.status in ("warn", "fail"):
                    label = "FAIL" if outcome.status == "fail" else "WARN"
                    message = f": {outcome.message}" if outcome.message else ""
                    lines.append(f"    {label}  {outcome.name}{message}")
        for name, path in self.docs.items():
            lines.append(f"  {name}: {path}")
        verdict = "OK" if self.ok else f"FAILED ({len(self.errors)} error-severity failures)"
        if self.warnings:
            verdict += f", {len(self.warnings)} warnings"
        lines.append(f"result: {verdict} in {self.seconds:.0f} s")
        return "\n".join(lines)


# --------------------------------------------------------------------------- dbt


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8").splitlines()[-lines:])
    except OSError:
        return ""


def dbt_tests(dbt_args: list[str]) -> list[Outcome]:
    """`dbt test`; one outcome per test from run_results.json."""
    target = target_path()
    results_file = target / "run_results.json"
    results_file.unlink(missing_ok=True)
    log = target / "check" / "dbt_test.log"
    code = run_dbt(["test", *dbt_args], log=log)
    data = _read_json(results_file)
    if data is None:
        return [Outcome("dbt test", "dbt test", "fail", f"exit {code}: {_log_tail(log)}")]
    outcomes = []
    for result in data.get("results", []):
        name = result["unique_id"].split(".")[2] if result["unique_id"].count(".") >= 2 else (
            result["unique_id"]
        )
        if result["unique_id"].startswith("operation."):
            continue  # on-run-start / on-run-end hooks: a failing hook fails dbt's exit code
        status = {"pass": "pass", "success": "pass", "warn": "warn", "skipped": "skip"}.get(
            result["status"], "fail"
        )
        message = ""
        if status != "pass":
            failures = result.get("failures")
            message = result.get("message") or ""
            if failures:
                # dbt's own message only repeats the count ("Got 3 results, ...")
                extra = "" if message.startswith("Got ") else f" ({message})"
                message = f"{failures} failing rows{extra}"
        outcomes.append(Outcome("dbt test", name, status, message.strip()))
    if code != 0 and not any(outcome.failed for outcome in outcomes):
        outcomes.append(Outcome("dbt test", "dbt test", "fail", f"exit {code}: {_log_tail(log)}"))
    return outcomes


def source_freshness(dbt_args: list[str]) -> list[Outcome]:
    target = target_path()
    output = target / "sources.json"
    output.unlink(missing_ok=True)
    log = target / "check" / "dbt_source_freshness.log"
    code = run_dbt(["source", "freshness", "--output", str(output), *dbt_args], log=log)
    data = _read_json(output)
    if data is None:
        if code == 0:
            return [Outcome("source freshness", "source freshness", "skip", "no freshness rules")]
        return [Outcome("source freshness", "source freshness", "fail",
                        f"exit {code}: {_log_tail(log)}")]
    outcomes = []
    for result in data.get("results", []):
        name = ".".join(result["unique_id"].split(".")[2:])
        status = {"pass": "pass", "warn": "warn"}.get(result["status"], "fail")
        age = result.get("max_loaded_at_time_ago_in_s")
        message = "" if age is None else f"last load {age / 3600:.1f} h ago"
        if result["status"] == "runtime error":
            message = result.get("error") or "runtime error"
        outcomes.append(Outcome("source freshness", name, status, message))
    return outcomes


def dbt_docs(dbt_args: list[str]) -> Outcome | str:
    target = target_path()
    log = target / "check" / "dbt_docs.log"
    code = run_dbt(["docs", "generate", "--static", *dbt_args], log=log)
    page = target / "static_index.html"
    if code != 0 or not page.exists():
        return Outcome("docs", "dbt docs generate", "warn", f"exit {code}: {_log_tail(log, 5)}")
    return str(page)


# --------------------------------------------------------------------------- Great Expectations


def sqlalchemy_url() -> str:
    """A psycopg2 SQLAlchemy URL for the PG* settings. A unix socket directory goes in the
    `host` query parameter behind a dummy host name (GX rejects a URL without a host)."""
    from warehouse.db import ensure_env

    env = ensure_env()
    user = quote(env.get("PGUSER", "postgres"), safe="")
    password = env.get("PGPASSWORD")
    auth = user + (f":{quote(password, safe='')}" if password else "")
    host = env.get("PGHOST", "localhost")
    port = env.get("PGPORT", "5432")
    database = quote(env.get("PGDATABASE", "warehouse"), safe="")
    params = []
    if host.startswith("/"):
        location = "localhost"
        params += [f"host={quote(host, safe='/')}", f"port={port}"]
    else:
        location = f"{host}:{port}"
    if env.get("PGSSLMODE"):
        params.append(f"sslmode={env['PGSSLMODE']}")
    query = ("?" + "&".join(params)) if params else ""
    return f"postgresql+psycopg2://{auth}@{location}/{database}{query}"


@dataclass
class Expect:
    """One expectation of the suite, as data: `kind` names a GX expectation class."""

    kind: str
    kwargs: dict[str, Any]
    severity: str = ERROR
    label: str = ""


def _between(column: str, low: float | None, high: float | None, severity: str = ERROR) -> Expect:
    return Expect("ExpectColumnValuesToBeBetween",
                  {"column": column, "min_value": low, "max_value": high}, severity)


def _not_null(column: str, severity: str = ERROR) -> Expect:
    return Expect("ExpectColumnValuesToNotBeNull", {"column": column}, severity)


def _unique(*columns: str) -> Expect:
    if len(columns) == 1:
        return Expect("ExpectColumnValuesToBeUnique", {"column": columns[0]})
    return Expect("ExpectCompoundColumnsToBeUnique", {"column_list": list(columns)})


def _parity(other: str, where: str = "", severity: str = ERROR) -> Expect:
    """Row count of the batch equals that of another relation (optionally filtered)."""
    condition = f" where {where}" if where else ""
    query = (
        "select batch_rows.n from (select count(*) as n from {batch}) as batch_rows"
        f" where batch_rows.n <> (select count(*) from {other}{condition})"
    )
    return Expect("UnexpectedRowsExpectation", {"unexpected_rows_query": query}, severity,
                  label=f"row count equals {other}{condition}")


def _in_set(column: str, values: Iterable[str], severity: str = ERROR) -> Expect:
    return Expect("ExpectColumnValuesToBeInSet", {"column": column, "value_set": list(values)},
                  severity)


_SCORES = ("score", "pronunciation_score", "fluency_score", "grammar_score")

# (schema, relation) -> expectations; the marts' and exports' contract columns only
SUITE: dict[tuple[str, str], list[Expect]] = {
    ("exports", "attempts"): [
        _not_null("attempt_id"), _unique("attempt_id"), _not_null("org_id"), _not_null("user_id"),
        _between("score", 0, 100), _between("talk_percentage", 0, 100),
        _between("duration_seconds", 0, None), _between("filler_words", 0, None),
        _between("interruptions", 0, None), _not_null("filler_words"),
        _parity("marts.fact_scenario_attempts"),
    ],
    ("exports", "sessions"): [
        _not_null("session_id"), _unique("session_id"), _not_null("user_id"),
        *[_between(column, 0, 100) for column in (*_SCORES, "clarity", "confidence")],
        _between("duration_ms", 0, None), _between("words_spoken", 0, None),
        _in_set("session_type", ("conversation", "pronunciation", "roleplay")),
        _parity("marts.fact_sessions"),
    ],
    ("exports", "user_summary"): [
        _not_null("user_id"), _unique("user_id"), _not_null("org_id"),
        _between("total_sessions", 0, None), _between("sessions_per_week", 0, None),
        _between("overall_consistency_score", 0, 100),
        _parity("marts.dim_users"),
    ],
    ("exports", "user_profile_json"): [
        _not_null("user_id"), _unique("user_id"), _not_null("document"),
        _not_null("export_version"), _parity("exports.user_summary"),
    ],
    ("exports", "kpi_events"): [
        _not_null("event_id"), _unique("event_id"), _not_null("schema_version"),
        _between("timestamp_ms", 0, None), _not_null("event_type"),
        _parity("marts.fact_kpi_events"),
    ],
    ("marts", "fact_scenario_attempts"): [
        _unique("attempt_id"), _not_null("org_id"), _between("score", 0, 100),
        _between("talk_ms", 0, None), _between("listen_ms", 0, None),
    ],
    ("marts", "fact_sessions"): [
        _unique("session_id"), _not_null("started_at"), _between("score", 0, 100),
    ],
    ("marts", "fact_session_metrics"): [
        _unique("session_id", "metric"), _not_null("value"), _in_set("metric", metric_names()),
    ],
    ("marts", "user_metric_stats"): [
        _unique("user_id", "metric"), _between("n", 1, None),
        *[_between(column, 0, 100) for column in
          ("pct_in_optimal", "pct_above_optimal", "pct_below_optimal",
           "pct_improved_vs_previous")],
        _between("stddev_value", 0, None),
    ],
    ("marts", "user_consistency"): [
        _unique("user_id", "metric"), _between("consistency_score", 0, 100),
    ],
    ("marts", "user_predictions"): [
        _unique("user_id", "metric", "horizon"), _between("goal_probability", 0, 1),
    ],
    ("marts", "user_practice_habits"): [
        _unique("user_id"), _between("preferred_day_of_week", 1, 7),
        _between("preferred_hour_of_day", 0, 23), _between("longest_streak_days", 0, None),
    ],
    ("marts", "mv_leaderboard_month"): [
        _between("avg_talk_percentage", 0, 100), _between("rank", 1, None),
    ],
    ("marts", "data_completeness"): [
        _unique("stream"), _not_null("rows_in_marts"),
        _between("completeness_pct", 100, 100, severity=WARN),
    ],
}


def _quiet_gx() -> None:
    warnings.filterwarnings("ignore", module="great_expectations")
    for name in ("great_expectations", "great_expectations.core", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _existing_relations(schemas: Iterable[str]) -> set[tuple[str, str]]:
    from warehouse.db import connect

    with connect() as conn:
        rows = conn.execute(
            "select n.nspname, c.relname from pg_class as c"
            " join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm', 'p')",
            (list(schemas),),
        ).fetchall()
    return {(schema, name) for schema, name in rows}


def great_expectations(
    docs_dir: Path | None, suite: dict[tuple[str, str], list[Expect]] | None = None
) -> tuple[list[Outcome], str | None]:
    """Run the suite on the database; write Data Docs to `docs_dir` when given."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.checkpoint.actions import ValidationAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    suite = SUITE if suite is None else suite
    existing = _existing_relations({schema for schema, _ in suite})
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    for site in list(context.get_site_names()):
        context.delete_data_docs_site(site)
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name="warehouse",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
            },
        )
    source = context.data_sources.add_postgres("warehouse", connection_string=sqlalchemy_url())
    outcomes: list[Outcome] = []
    definitions = []
    labels: dict[tuple[str, int | None], tuple[str, str]] = {}
    for (schema, relation), expects in suite.items():
        name = f"{schema}.{relation}"
        if (schema, relation) not in existing:
            outcomes.append(Outcome("Great Expectations", name, "fail", "relation does not exist"))
            continue
        asset = source.add_table_asset(name, table_name=relation, schema_name=schema)
        batch = asset.add_batch_definition_whole_table("whole table")
        expectation_suite = context.suites.add(gx.ExpectationSuite(name=name))
        for index, expect in enumerate(expects):
            expectation_class: Callable[..., Any] = getattr(gx.expectations, expect.kind)
            expectation = expectation_class(
                **expect.kwargs,
                severity="critical" if expect.severity == ERROR else "warning",
                description=expect.label or None,
                meta={"index": index},
            )
            expectation_suite.add_expectation(expectation)
            labels[(name, index)] = (_describe(expect), expect.severity)
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=expectation_suite)
        ))
    if definitions:
        actions: list[ValidationAction] = (
            [gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if docs_dir else []
        )
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name="warehouse", validation_definitions=definitions, actions=actions,
            result_format={"result_format": "SUMMARY"},
        ))
        result = checkpoint.run()
        for run_result in result.run_results.values():
            name = run_result.suite_name
            for item in run_result.results:
                config = item.expectation_config
                position = ((config.meta if config else None) or {}).get("index")
                label, severity = labels.get(
                    (name, position), (config.type if config else "expectation", ERROR)
                )
                status = "pass" if item.success else "fail" if severity == ERROR else "warn"
                message = "" if item.success else _gx_message(item)
                outcomes.append(Outcome("Great Expectations", f"{name}: {label}", status, message))
    index_page = None
    if docs_dir is not None and (docs_dir / "index.html").exists():
        index_page = str(docs_dir / "index.html")
    return outcomes, index_page


def _describe(expect: Expect) -> str:
    if expect.label:
        return expect.label
    kwargs = expect.kwargs
    column = kwargs.get("column") or ", ".join(kwargs.get("column_list", []))
    kind = expect.kind
    if kind == "ExpectColumnValuesToBeBetween":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        bounds = f">= {low}" if high is None else f"<= {high}" if low is None else (
            f"in [{low}, {high}]")
        return f"{column} {bounds}"
    return {
        "ExpectColumnValuesToNotBeNull": f"{column} not null",
        "ExpectColumnValuesToBeUnique": f"{column} unique",
        "ExpectCompoundColumnsToBeUnique": f"({column}) unique",
        "ExpectColumnValuesToBeInSet": f"{column} in {kwargs.get('value_set')}",
    }.get(kind, f"{kind} {column}".strip())


def _gx_message(item: Any) -> str:
    if item.exception_info and item.exception_info.get("raised_exception"):
        return str(item.exception_info.get("exception_message", "exception"))[:300]
    result = item.result or {}
    if "unexpected_count" in result:
        sample = result.get("partial_unexpected_list") or []
        text = f"{result['unexpected_count']} unexpected values"
        return text + (f", e.g. {sample[:3]}" if sample else "")
    if "observed_value" in result:
        return f"observed {result['observed_value']}"
    return "not met"


# --------------------------------------------------------------------------- all together


def run_checks(
    dbt_args: list[str] | None = None,
    docs: bool = True,
    gx_suite: bool = True,
    progress: Callable[[str], None] | None = None,
) -> CheckReport:
    dbt_args = list(dbt_args or [])
    say = progress or (lambda _text: None)
    started = time.monotonic()
    report = CheckReport()
    say("dbt test ...")
    report.outcomes += dbt_tests(dbt_args)
    say("dbt source freshness ...")
    report.outcomes += source_freshness(dbt_args)
    if gx_suite:
        say("Great Expectations suite ...")
        docs_dir = target_path() / "gx_docs" if docs else None
        try:
            outcomes, page = great_expectations(docs_dir)
        except Exception as error:  # a broken GX setup is a failed check, not a crash
            outcomes, page = [Outcome("Great Expectations", "suite", "fail", repr(error))], None
        report.outcomes += outcomes
        if page:
            report.docs["GX Data Docs"] = page
    if docs:
        say("dbt docs generate --static ...")
        docs_result = dbt_docs(dbt_args)
        if isinstance(docs_result, Outcome):
            report.outcomes.append(docs_result)
        else:
            report.docs["dbt docs"] = docs_result
    report.seconds = time.monotonic() - started
    return report
