"""The main job, run once per test session for every report test (it takes about 30 s)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # report_job.py: helpers shared by the report tests
from report_job import run_job  # noqa: E402


@pytest.fixture(scope="session")
def job(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("first")
    result = run_job(cwd)
    assert result.exit_code == 0, result.output
    return cwd / "reports"
