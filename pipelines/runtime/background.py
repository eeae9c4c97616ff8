"""Work on a daemon thread for as long as a `with` block lasts (a lease's renewals, a stop relay).

Checked: `threading.Timer` runs once, and `concurrent.futures` has no notion of "until the
block ends"; this is the few lines that join the two.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def in_background(work: Callable[[threading.Event], None], name: str, join_s: float = 0.0) -> Iterator[None]:
    """`work(finished)` on a daemon thread while inside; on leaving, `finished` is set and the
    thread given up to `join_s` seconds to end."""
    finished = threading.Event()
    thread = threading.Thread(target=work, args=(finished,), name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        if join_s:
            thread.join(timeout=join_s)
