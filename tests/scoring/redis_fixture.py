"""Redis fixture of the pure scoring tests (imported by the test modules, so it also works with
--noconftest): a client on db 9, flushed around each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

REDIS_URL = os.environ.get("PULSE_TEST_SCORING_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture(name="rds")
def redis_db_fixture() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    client.flushdb()  # db 9 belongs to these tests
    yield client
    client.flushdb()
    client.close()
