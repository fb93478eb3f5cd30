"""Fixtures shared by every test directory."""

import os
from collections.abc import Iterator

import pytest

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
