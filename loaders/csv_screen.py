"""Before PostgreSQL 17 (no `COPY ... on_error`): which records of a CSV piece might hold a
value that is not of its column's type.

pyarrow's multi-threaded CSV reader reads the piece and tests every typed value against
`rules.CERTAINLY_VALID` (RE2, vectorised): a record with a value the expressions do not
vouch for is a suspect. When every record is one line (no quoted newline), the piece is
then COPYed into its typed landing table with each suspect line blanked (an empty record
keeps the numbering), and only the suspects are tested exactly in SQL (`copy_in`). When
pyarrow cannot read the piece, or its records are not its lines, the screen gives up
(None) and the piece takes the slower path: COPY into text and every value tested in SQL.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from loaders.rules import CERTAINLY_VALID
from loaders.streams import Stream


@dataclass
class Screened:
    """A piece whose records are its lines: `line_ends[i]` is the offset just past record
    i's newline (header excluded), `suspects` the 0-based records to test exactly."""

    data: bytes
    body_start: int  # offset of the first record (after the header line, if any)
    line_ends: Any  # numpy array of offsets
    suspects: list[int]

    def blanked(self, width: int) -> bytes:
        """The piece's records with each suspect replaced by an empty record (all nulls)."""
        empty = b"," * (width - 1) + b"\n"
        out = []
        start = self.body_start
        for index in self.suspects:
            begin = self.body_start if index == 0 else int(self.line_ends[index - 1])
            out.append(self.data[start:begin])
            out.append(empty)
            start = int(self.line_ends[index])
        out.append(self.data[start:])
        return b"".join(out)

    def line(self, index: int) -> bytes:
        begin = self.body_start if index == 0 else int(self.line_ends[index - 1])
        return self.data[begin:int(self.line_ends[index])].rstrip(b"\r\n")


def screen_piece(data: bytes, header: bool, targets: list[str], stream: Stream) -> Screened | None:
    """Screen a piece's bytes (header line first when `header`); None when the piece must
    take the slower path."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    checked = {
        name: CERTAINLY_VALID[stream.column(name).sql_type]
        for name in targets
        if name in stream.column_names and stream.column(name).sql_type in CERTAINLY_VALID
    }
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A) + 1
    body_start = int(newlines[0]) if header and len(newlines) else 0
    line_ends = newlines[newlines > body_start]
    if data[-1:] not in (b"\n", b""):
        line_ends = np.append(line_ends, len(data))
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                column_names=targets, skip_rows=1 if header else 0, block_size=1 << 23),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in targets},
                include_columns=list(checked) or targets[:1], strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=[""],
            ),
        )
    except (pa.ArrowException, ValueError):
        return None
    if table.num_rows != len(line_ends):
        return None  # a quoted newline: records are not lines
    suspect = None
    for name, pattern in checked.items():
        values = table.column(name)
        unvouched = pc.and_kleene(
            pc.is_valid(values), pc.invert(pc.match_substring_regex(values, pattern)))
        suspect = unvouched if suspect is None else pc.or_kleene(suspect, unvouched)
    suspects: list[int] = []
    if suspect is not None:
        suspects = [int(index) for index in
                    pc.indices_nonzero(pc.fill_null(suspect, False)).to_pylist()]
    return Screened(data, body_start, line_ends, suspects)
