"""Raw records as they come off a source, before decoding.

Sources hand the dataflow whole batches, not single records: Bytewax's cost per item is
paid once per batch, and decoding and validation run over the batch at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class RawBatch:
    """Records read together from one source partition.

    ``source`` names where they came from (``topic/partition`` or a file path) and
    ``positions`` holds each record's offset or line number, so a dead letter can say
    exactly which record was bad.
    """

    source: str
    values: list[bytes] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)
