MAX_MARKERS: int  # markers in one call

def rewrite(events: bytes, seen: bytes, literal: bytes, finish: bytes, usage: bytes,
            markers: tuple[bytes, ...], keep_usage: bool
            ) -> tuple[bytes, int, int, tuple[int, int, int] | None]: ...
