"""Fixtures shared by every test directory."""

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.support.providers import Providers, running_providers
from tests.support.tansu import TansuBroker

# Jobs started by tests never take the fixed default ports (metrics, leaderboards):
# tests that need an endpoint pick a free port themselves.
os.environ.setdefault("PITBOSS_METRICS_PORT", "0")
os.environ.setdefault("PITBOSS_LEADERBOARD_PORT", "0")


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[TansuBroker]:
    """One in-memory Tansu broker for the whole test session, on a free loopback port."""
    with TansuBroker() as broker:
        yield broker


@pytest.fixture
def providers() -> Iterator[Providers]:
    """Fake SMS, push, webhook and wallet providers on a loopback HTTP server."""
    with running_providers() as fake:
        yield fake


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the Redis server at REDIS_URL (default redis://127.0.0.1:6379)."""
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; only its keys are deleted afterwards."""
    prefix = f"pitboss-test-{uuid.uuid4().hex[:12]}:"
    yield prefix
    for key in redis_client.scan_iter(match=f"{prefix}*"):
        redis_client.delete(key)
