"""Stores the guards consult: dedup ledger, suppression list, frequency caps, budgets.

The interfaces and shared rules are in :mod:`sinks.stores.base` (re-exported here); the
in-process implementations in :mod:`sinks.stores.memory` (``memory_stores``) and the Redis
ones in :mod:`sinks.stores.redis` (``connect``, ``redis_stores``). Evicted players' state
goes to :mod:`sinks.stores.cold` (the interface and the memory store are in
``operators.eviction``).
"""

from sinks.stores.base import (
    DEFAULT_LATENESS_SECONDS,
    DEFAULT_LEDGER_TTL_SECONDS,
    DEFAULT_PREFIX,
    BudgetNotConfiguredError,
    Budgets,
    CapRule,
    DecisionLedger,
    FrequencyCaps,
    StoreError,
    Stores,
    StoreUnavailable,
    SuppressionList,
)

__all__ = [
    "DEFAULT_LATENESS_SECONDS",
    "DEFAULT_LEDGER_TTL_SECONDS",
    "DEFAULT_PREFIX",
    "BudgetNotConfiguredError",
    "Budgets",
    "CapRule",
    "DecisionLedger",
    "FrequencyCaps",
    "StoreError",
    "StoreUnavailable",
    "Stores",
    "SuppressionList",
]
