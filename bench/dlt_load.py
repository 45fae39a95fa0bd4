"""Load KPI-event CSV files with dlt on its fastest documented Postgres path.

Runs in its own virtualenv (bench/.venv-dlt, made by bench/setup_dlt.sh): Arrow record
batches read by pyarrow's CSV reader, normalised by dlt into CSV and COPYed.
"""

from __future__ import annotations

import os
import sys

import dlt
import pyarrow.csv as pacsv


def kpi_batches(paths: list[str]):
    convert = pacsv.ConvertOptions(strings_can_be_null=True)
    for path in paths:
        yield from pacsv.open_csv(path, convert_options=convert)


def main() -> None:
    paths = sys.argv[1:]
    host = os.environ["PGHOST"]
    # dlt insists on a password; the embedded server trusts its socket and ignores it
    credentials = (
        f"postgresql://{os.environ.get('PGUSER', 'postgres')}:"
        f"{os.environ.get('PGPASSWORD', 'unused')}@localhost:"
        f"{os.environ.get('PGPORT', '5432')}/{os.environ['PGDATABASE']}?host={host}"
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_kpi",
        destination=dlt.destinations.postgres(credentials=credentials),
        dataset_name="dlt_raw",
        pipelines_dir=os.path.join(os.path.dirname(__file__), ".dlt-pipelines"),
    )
    resource = dlt.resource(kpi_batches(paths), name="kpi_events")
    info = pipeline.run(resource, loader_file_format="csv")
    print(info)


if __name__ == "__main__":
    main()
