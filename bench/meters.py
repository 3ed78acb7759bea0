"""CPU and memory of running processes, from /proc."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def rss(pids: dict[str, int]) -> dict[str, int]:
    """RSS in bytes of each named process (0 when it is gone)."""
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = rss_bytes(pid)
        except FileNotFoundError:
            out[name] = 0
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by ``pid`` (None when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


class CpuMeter:
    """CPU seconds used by named processes between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = 0.0
        self.before: dict[str, float | None] = {}
        self.machine0 = (0.0, 0.0)

    def start(self) -> CpuMeter:
        self.t0 = time.monotonic()
        self.machine0 = machine_cpu()
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, Any]:
        """Per process: CPU seconds used and the share of one core over the interval."""
        wall = time.monotonic() - self.t0
        used = {}
        for name, pid in self.pids.items():
            now, before = cpu_seconds(pid), self.before[name]
            if now is not None and before is not None:
                used[name] = now - before
        total = sum(used.values())
        busy = machine_cpu()[0] - self.machine0[0]
        return {
            # every process on the machine, ours and other people's, in cores
            "machine_busy_cores": round(busy / wall, 3),
            "others_busy_cores": round(max(0.0, busy - total) / wall, 3),
            "wall_s": round(wall, 3),
            "cpu_s": {name: round(v, 3) for name, v in used.items()},
            "core_share": {name: round(v / wall, 3) for name, v in used.items()},
            "total_core_share": round(total / wall, 3),
        }
