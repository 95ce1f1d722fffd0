"""Processes of one run under ``torchrun``: which classes are this process's, and waiting for the
others without hanging on a dead one (a heartbeat in torchrun's key-value store)."""

from __future__ import annotations

import math
import os
import threading
import time
from datetime import timedelta

from .errors import NadkitError


def dist_timeout() -> float:
    """Seconds a process waits for a silent peer under torchrun (NADKIT_DIST_TIMEOUT, default 30 min)."""
    text = os.environ.get("NADKIT_DIST_TIMEOUT", "1800")
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise NadkitError(f"NADKIT_DIST_TIMEOUT must be a number of seconds > 0, got {text!r}")
    return seconds


class Ranks:
    """This process's place among ``torchrun`` processes (rank 0 of 1 without torchrun).

    The processes only wait for each other; no tensor crosses between them. Waiting goes through
    torchrun's key-value store, and each process beats a heart there from a thread while it works:
    a peer whose heart stops for ``NADKIT_DIST_TIMEOUT`` seconds is dead (or hung), and the others
    stop with one line naming it, while a slow peer that is still working is waited for.
    """

    def __init__(self):
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        self.local = int(os.environ.get("LOCAL_RANK", 0))
        self.timeout = dist_timeout() if self.world > 1 else math.inf
        self.store = None
        if self.world > 1:
            import torch.distributed as dist

            self._lock = threading.Lock()
            try:
                if not dist.is_initialized():
                    dist.init_process_group("gloo", timeout=timedelta(seconds=self.timeout))
                self.store = dist.distributed_c10d._get_default_store()
                self._beat()
            except (RuntimeError, ValueError) as e:  # DistStoreError and friends
                raise NadkitError(f"rank {self.rank}: not all {self.world} torchrun processes joined within "
                                  f"{self.timeout:g} s ({str(e).strip().splitlines()[0][:120]}); re-run the same "
                                  "command") from None
            threading.Thread(target=self._heart, daemon=True).start()

    def _beat(self) -> None:
        with self._lock:
            self.store.add(f"nadkit/beat/{self.rank}", 1)

    def _heart(self) -> None:
        while True:
            time.sleep(max(0.2, min(10.0, self.timeout / 10)))
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - the store is gone: the waiter in the main thread reports it
                return

    def wait(self, step: str = "step") -> None:
        """Wait until every process has reached ``step``; one line naming the rank that went silent."""
        if self.world <= 1:
            return
        try:
            self._wait(step)
        except NadkitError:
            raise
        except Exception as e:  # noqa: BLE001 - the store itself died with rank 0 or the agent
            raise NadkitError(f"rank {self.rank}: lost contact with the other torchrun processes while waiting at "
                              f"{step!r} ({str(e).splitlines()[0][:120]}); finished classes are saved, re-run the same "
                              "command to resume") from None

    def _wait(self, step: str) -> None:
        with self._lock:
            self.store.add(f"nadkit/at/{step}/{self.rank}", 1)
        others = [r for r in range(self.world) if r != self.rank]
        seen = {r: (-1, time.monotonic()) for r in others}  # last heartbeat count, when it last changed
        while True:
            with self._lock:
                arrived = [r for r in others if self.store.add(f"nadkit/at/{step}/{r}", 0) > 0]
                beats = {r: self.store.add(f"nadkit/beat/{r}", 0) for r in others}
            if len(arrived) == len(others):
                return
            now = time.monotonic()
            for r in others:
                if beats[r] != seen[r][0]:
                    seen[r] = (beats[r], now)
                elif r not in arrived and now - seen[r][1] > self.timeout:
                    raise NadkitError(f"rank {r} of {self.world} stopped answering for {self.timeout:g} s before "
                                      f"reaching {step!r} (it died or was stopped); rank {self.rank} stops too. Finished "
                                      "classes are saved: re-run the same command to resume (NADKIT_DIST_TIMEOUT sets "
                                      "the wait)")
            time.sleep(min(0.5, self.timeout / 20))
