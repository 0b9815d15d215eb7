"""The one memory metric of every scenario: PSS (shared pages split between the processes that map
them, so a total counts them once), with Ray's object store counted apart. Every worker maps the
store, and the pages a worker once wrote there stay in its PSS whether or not they still hold a
live object, so over a long run a worker's PSS with the store grows towards its share of the
store's size (bounded by the store's size) without any memory of its own growing."""

from __future__ import annotations

import threading

from benchmarks.harness.processes import ray_title


def pss(pid: int) -> tuple[int, int]:
    """(PSS outside the object store, PSS of the object store's mapping: /dev/shm/plasma*), bytes."""
    import psutil

    own = store = 0
    for mapping in psutil.Process(pid).memory_maps(grouped=True):
        if mapping.path.startswith("/dev/shm/plasma"):
            store += mapping.pss
        else:
            own += mapping.pss
    return own, store


def pss_of(pids) -> dict[int, int]:
    """pid → PSS outside the object store, for the processes still alive."""
    import psutil

    out = {}
    for pid in pids:
        try:
            out[pid] = pss(pid)[0]
        except psutil.Error:
            continue
    return out


class PeakMemory:
    """Peak PSS of this process (the driver) and of its descendant Ray worker processes (actors,
    tasks and the engine processes they start), sampled every ``every_s``; ``object_store`` the
    peak of all their shares of the store together; ``by_name`` the peak of each kind of worker."""

    def __init__(self, every_s: float = 1.0):
        self.every_s, self.driver, self.workers, self.largest, self.largest_name = every_s, 0, 0, 0, ""
        self.object_store = 0
        self.by_name: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self.every_s):
            self.driver = max(self.driver, pss(me.pid)[0])
            sizes, store = [], 0
            for proc in me.children(recursive=True):
                try:
                    if any(p.name().startswith("ray::") for p in (proc, *proc.parents())):
                        own, shared = pss(proc.pid)
                        sizes.append((own, ray_title(proc.cmdline()[0])))  # the full title, not the 15-character name
                        store += shared
                except (psutil.Error, IndexError):
                    continue
            self.workers = max(self.workers, sum(size for size, _ in sizes))
            self.object_store = max(self.object_store, store)
            self.largest, self.largest_name = max([(self.largest, self.largest_name), *sizes])
            for size, name in sizes:
                if not name.startswith("ray::IDLE"):
                    self.by_name[name] = max(self.by_name.get(name, 0), size)


class PeakPss(threading.Thread):
    """Peak PSS (object store apart) of given processes (name → pid), sampled every ``every_s``."""

    def __init__(self, pids: dict[str, int], every_s: float = 0.5):
        super().__init__(daemon=True)
        self.pids, self.every_s, self.stopping = pids, every_s, threading.Event()
        self.start_pss = {name: pss(pid)[0] for name, pid in pids.items()}
        self.peak = dict(self.start_pss)

    def run(self) -> None:
        while not self.stopping.wait(self.every_s):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], pss(pid)[0])

    def stop(self) -> dict:
        self.stopping.set()
        self.join()
        return {name: {"before_mb": self.start_pss[name] >> 20, "peak_mb": self.peak[name] >> 20} for name in self.pids}
