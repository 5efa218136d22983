"""The garbage collector, tuned for a server whose heap is mostly its start-up.

Measured under load (bench/README.md): with CPython's defaults a gateway spent
about a tenth of its CPU in the cyclic garbage collector, mostly in full
collections that walk the ~60,000 objects of the imported libraries and the
config, none of which ever become garbage. After start-up (and after a
reload, once the old config is retired) those objects are moved out of the
collector's sight with `gc.freeze()`, and young collections run less often.
Reference counting still frees almost everything at once; the collector only
finds cycles, and a cycle waits at most a few thousand allocations longer.
"""

from __future__ import annotations

import gc

# Young collections every 10,000 net container allocations instead of 700; older
# generations after 20 younger collections each instead of 10.
THRESHOLDS = (10_000, 20, 20)


def freeze() -> None:
    """Collect what is garbage now, then leave what lives on out of later collections."""
    gc.unfreeze()  # the previous config, now retired, may be cyclic garbage
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
