"""Peak-memory tracking for the benchmarks: RSS sampling with the line that caused the peak.

Not a library module: the scripts in ``bench/`` import it by path.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback


def rss_mb() -> float:
    """Current resident memory of this process (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakTracker(threading.Thread):
    """Samples RSS; at each new maximum, remembers where the main thread was.

    A C call that holds the GIL (a NumPy or SciPy kernel) blocks the sampler, so the
    peak is attributed to the line running when the sampler next gets in: the
    allocating line, or the one right after it while its result is still alive.  With
    ``kill_mb``, a process that goes past it prints ``on_kill()``'s JSON and exits with
    status 3 instead of taking a shared machine's memory.
    """

    def __init__(self, every: float = 0.02, kill_mb: float | None = None, on_kill=None):
        super().__init__(daemon=True)
        self.every, self.kill_mb, self.on_kill = every, kill_mb, on_kill
        self.peak, self.where, self._where_mb = 0.0, [], -1e9
        self._main = threading.main_thread().ident
        self._done = threading.Event()

    def stack(self, limit: int = 8) -> list[str]:
        frame = sys._current_frames().get(self._main)
        if frame is None:
            return []
        out = []
        for fs in traceback.extract_stack(frame)[::-1]:
            if "lshgan" in fs.filename or "bench" in fs.filename or "scipy" in fs.filename \
                    or "sklearn" in fs.filename:
                out.append(f"{os.path.basename(fs.filename)}:{fs.lineno} {fs.name}: {fs.line}")
            if len(out) >= limit:
                break
        return out

    def run(self):
        while not self._done.is_set():
            now = rss_mb()
            if now > self.peak:
                if now > self._where_mb + 32:  # taking a stack is costly: not every MiB
                    self.where, self._where_mb = self.stack(), now
                self.peak = now
            if self.kill_mb and now > self.kill_mb:
                print(json.dumps(self.on_kill(self) if self.on_kill else {"killed_at_mb": now}))
                sys.stdout.flush()
                os._exit(3)
            time.sleep(self.every)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return max(self.peak, rss_mb())
