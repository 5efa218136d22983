"""The in-process store: for one process with no Redis. State is lost on restart."""

from __future__ import annotations


class MemoryStore:
    kind = "memory"

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        pass
