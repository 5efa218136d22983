MAX_MARKERS: int  # markers in one call

def rewrite(events: bytes, seen: bytes, literal: bytes, markers: tuple[bytes, ...],
            keep_usage: bool) -> tuple[bytes, int, int, tuple[int, int, int] | None,
                                       tuple[int, int, int, int] | None]: ...
