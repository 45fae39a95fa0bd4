"""What a load reports: each file's result, the problems of its rows, and the rejection
of a whole file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class RejectedFile(Exception):
    """The file as a whole cannot be loaded; nothing of it is."""


@dataclass
class FileResult:
    path: Path
    stream: str | None
    status: str  # loaded | already_loaded | rejected | skipped
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reason: str = ""
    load_id: int | None = None
    problems: list[str] = field(default_factory=list)
    retryable: bool = False  # rejected for the database's state, not the file's

    def line(self) -> str:
        """The line `warehouse load` prints for the file."""
        name = str(self.path)
        if self.status == "loaded":
            text = (
                f"{name}: {self.stream}: {self.rows_read} rows read, {self.rows_loaded} loaded, "
                f"{self.rows_quarantined} quarantined"
            )
            if self.problems:
                text += " (e.g. " + "; ".join(self.problems[:3]) + ")"
            return text
        if self.status == "already_loaded":
            text = f"{name}: {self.stream}: already loaded (same content), nothing changed"
            return text + (f"; {self.reason}" if self.reason else "")
        if self.status == "skipped":
            return f"{name}: skipped ({self.reason})"
        return f"{name}: REJECTED: {self.reason}"


@dataclass
class Problem:
    """A row that goes to raw.quarantine."""

    row_number: int
    location: str
    raw_row: str | None
    reason: str


@dataclass
class PartResult:
    """One landing table of a load: the rows read into it, the good ones, the problems."""

    table: str
    rows_read: int = 0
    rows_good: int = 0
    problems: list[Problem] = field(default_factory=list)
    line_based: bool = True
    # rows COPY skipped for a value not of its type, whose reason is found from their text
    unexplained: list[Problem] = field(default_factory=list)
