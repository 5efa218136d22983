MAX_MARKERS: int  # markers in one call

def rewrite(events: bytes, seen: bytes, literal: bytes,
            markers: tuple[bytes, ...]) -> tuple[bytes, int]: ...
