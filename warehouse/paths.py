"""Where the project lives on disk."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The folder holding dbt_project.yml: $WAREHOUSE_HOME, else the checkout of this package."""
    configured = os.environ.get("WAREHOUSE_HOME")
    if configured:
        return Path(configured).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "dbt_project.yml").exists():
        return here
    cwd = Path.cwd().resolve()
    for candidate in (cwd, *cwd.parents):
        if (candidate / "dbt_project.yml").exists():
            return candidate
    return here


def state_dir() -> Path:
    """`.warehouse/` in the project: the embedded server's data, locks and run state."""
    path = Path(os.environ.get("WAREHOUSE_STATE_DIR", project_root() / ".warehouse"))
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()
