"""A build stopped by SIGTERM or SIGHUP (`kill`, `timeout`, a service manager, `docker stop`, a closed terminal)
unwinds like Ctrl-C: its temp files are removed and nothing is replaced. Without a handler the process dies on the
spot and leaves gigabytes of temp outputs behind."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """Raised in the building process by SIGTERM / SIGHUP; a KeyboardInterrupt, so every cleanup path runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


@contextmanager
def unwind_on_termination() -> Iterator[None]:
    """While the block runs, SIGTERM / SIGHUP raise `Stopped`; a caller's own handlers are left alone, and
    outside the main thread (where Python allows no handler) nothing changes."""

    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            if signal.getsignal(signum) in (signal.SIG_DFL, None):
                previous[signum] = signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def reset_in_worker() -> None:
    """A forked worker inherits the handlers; it must just die (the parent does the cleanup)."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
