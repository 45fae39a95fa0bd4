"""Builds never make a mart or export view unreadable: a reader polling every relation of
`marts` and `exports` during a `--full-refresh` (the build the README asks for after a seed
change) sees no error and no empty relation."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
from conftest import Database

RELATIONS = """
    select format('%I.%I', schemaname, relname) from (
        select schemaname, tablename as relname from pg_tables where schemaname = 'marts'
        union all
        select schemaname, viewname from pg_views where schemaname = 'exports'
    ) as relations
    order by 1
"""


def poll(database: Database, relations: list[str], stop: threading.Event,
         problems: list[str], rounds: list[int]) -> None:
    with database.connect(autocommit=True) as conn:
        while not stop.is_set():
            for relation in relations:
                try:
                    if conn.execute(f"select exists (select from {relation})").fetchone() != (
                        True,
                    ):
                        problems.append(f"{relation} empty")
                except psycopg.Error as error:
                    problems.append(f"{relation}: {error}".strip())
            rounds[0] += 1
            time.sleep(0.05)


def test_full_refresh_keeps_every_relation_readable(
    fresh_database: Database, generated_data: Path
) -> None:
    db = fresh_database
    db.warehouse("load", str(generated_data))
    db.build()
    relations = [row[0] for row in db.query(RELATIONS)]
    assert "marts.fact_kpi_events" in relations and "exports.user_profile_json" in relations
    stop = threading.Event()
    problems: list[str] = []
    rounds = [0]
    reader = threading.Thread(target=poll, args=(db, relations, stop, problems, rounds))
    reader.start()
    try:
        db.build("--full-refresh")
    finally:
        stop.set()
        reader.join()
    assert rounds[0] >= 3, "the reader polled during the build"
    assert not problems, f"readers saw {len(problems)} problems, e.g. {problems[:5]}"
