from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _fresh_usage_counters():  # type: ignore[no-untyped-def]
    """Usage counters of earlier runs (same tenant ids, same day) must not count against today's plan
    limit in this run."""
    from pulse.lib.redis import get_redis

    redis = get_redis()
    for pattern in ("pulse:usage:*", "pulse:usage-flush:*"):
        keys = list(redis.scan_iter(match=pattern, count=1000))
        if keys:
            redis.delete(*keys)
    yield
