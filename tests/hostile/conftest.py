"""Fixtures shared by the hostile tests."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client(tiny_bundle):
    """The web demo on the tiny test bundle, in process (one app per test module)."""
    from drgrader.inference.serve import create_app

    with TestClient(create_app(tiny_bundle, max_upload_mb=1, max_pixels=1_000_000)) as c:
        yield c
