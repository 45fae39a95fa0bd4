"""The normal CDF macro (Cody's erfc) against scipy.stats.norm.cdf, in Postgres itself."""

from __future__ import annotations

from pathlib import Path

import jinja2
import numpy as np
import psycopg
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent


def _cdf_sql(argument: str) -> str:
    """The SQL expression the dbt macro `normal_cdf` renders for `argument`."""
    source = (ROOT / "macros" / "stats" / "normal_cdf.sql").read_text()
    template = jinja2.Environment().from_string(source + "{{ normal_cdf(argument) }}")
    return template.render(argument=argument)


@pytest.fixture(scope="module")
def connection(server_env: dict[str, str]):
    with psycopg.connect(
        host=server_env["PGHOST"], port=server_env.get("PGPORT"), user=server_env.get("PGUSER"),
        dbname="postgres",
    ) as conn:
        yield conn


def _evaluate(connection: psycopg.Connection, z: np.ndarray) -> np.ndarray:
    rows = connection.execute(
        f"select {_cdf_sql('z.value')} from unnest(%s::double precision[]) "
        "with ordinality as z (value, position) order by z.position",
        ([float(v) for v in z],),
    ).fetchall()
    return np.array([row[0] for row in rows], dtype=float)


def test_matches_scipy_to_1e_minus_7_everywhere(connection: psycopg.Connection) -> None:
    rng = np.random.default_rng(7)
    z = np.concatenate([
        np.linspace(-40, 40, 8001),
        rng.normal(0, 3, 5000),
        # Cody's interval edges in t = -z / sqrt(2): 0.46875, 4 and 26.543
        np.outer([1.0, -1.0], np.array([0.46875, 4.0, 26.543]) * np.sqrt(2)).ravel(),
        [0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e-17, -1e-17],
    ], axis=None)
    got = _evaluate(connection, z)
    want = stats.norm.cdf(z)
    assert np.all(np.abs(got - want) <= 1e-7)
    # in fact far better than asked: double-precision accuracy, also relatively in the tails
    assert np.max(np.abs(got - want)) < 1e-15
    tail = want > 1e-300
    assert np.max(np.abs(got[tail] - want[tail]) / want[tail]) < 1e-12


def test_known_values_and_limits(connection: psycopg.Connection) -> None:
    z = np.array([0.0, 1.0, -1.0, 1.959963984540054, 40.0, -40.0, 1e6, -1e6])
    got = _evaluate(connection, z)
    assert got[0] == 0.5
    assert got[1] + got[2] == pytest.approx(1.0, abs=1e-16)
    assert got[3] == pytest.approx(0.975, abs=1e-15)
    assert list(got[4:]) == [1.0, 0.0, 1.0, 0.0]


def test_monotone_and_null_safe(connection: psycopg.Connection) -> None:
    z = np.linspace(-10, 10, 20001)
    got = _evaluate(connection, z)
    assert np.all(np.diff(got) >= 0)
    assert connection.execute(f"select {_cdf_sql('null')}").fetchone() == (None,)
    # the argument may be any expression, evaluated once per row
    assert connection.execute(f"select {_cdf_sql('(3.0 - 1.0) / 2.0')}").fetchone()[0] == (
        pytest.approx(stats.norm.cdf(1.0), abs=1e-15)
    )
