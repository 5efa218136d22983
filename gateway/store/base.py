"""What every store provides."""

from __future__ import annotations

from typing import Protocol


class Store(Protocol):
    kind: str

    async def ping(self) -> bool:
        """True when the store answers; /readyz reports it."""

    async def close(self) -> None: ...
