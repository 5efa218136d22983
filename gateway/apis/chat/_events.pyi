MAX_MARKERS: int  # markers in one call

def rewrite(events: bytes, seen: bytes, literal: bytes, markers: tuple[bytes, ...],
            keep_usage: bool) -> tuple[bytes, int, int, tuple[int, int, int] | None,
                                       tuple[int, int, int, int] | None]: ...

def deltas(events: bytes, at: int, prefix: bytes, suffix: bytes, head: bytes, tail: bytes,
           number: int) -> tuple[bytes, int, int, int, str]: ...
