"""Raw records as they come off a source, before decoding.

Sources hand the dataflow whole batches, not single records: Bytewax's cost per item is
paid once per batch, and decoding and validation run over the batch at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class RawBatch:
    """Records read together from one source partition.

    ``source`` names where they came from (``topic/partition`` or a file path) and
    ``positions`` holds each record's offset or line number, so a dead letter can say
    exactly which record was bad. ``read_at`` (wall time) is when the batch left its
    source, for the decision-latency metric.
    """

    source: str
    values: list[bytes] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    read_at: float = field(default_factory=time.time)

    def __len__(self) -> int:
        return len(self.values)
