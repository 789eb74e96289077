"""External tools the tests drive (Chromium, go, speedscope): missing ones skip locally, fail in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing_tool(reason: str) -> NoReturn:
    """Skips the test on a developer's machine; fails it under ``CI=true``, where scripts/test.sh installs every tool."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} — CI must have it", pytrace=False)
    pytest.skip(reason)
