"""CPU and memory readings of processes and of the whole machine, from /proc (Linux only).

Also the work-folder run that the benchmark scripts share.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_in_work_dir(
    args: argparse.Namespace,
    prefix: str,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    summarize: Callable[[dict[str, Any]], None],
) -> None:
    """Run a benchmark in `args.work_dir` (a new temporary folder when unset), print its
    summary and write `args.json`. A temporary folder is removed unless `args.keep`."""
    created = args.work_dir is None
    args.work_dir = Path(tempfile.mkdtemp(prefix=prefix)) if created else args.work_dir
    args.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = run(args)
        summarize(report)
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=2, default=str))
            print(f"results: {args.json}")
    finally:
        if created and not args.keep:
            shutil.rmtree(args.work_dir, ignore_errors=True)


def status_kb(name: str, pid: int | str = "self") -> int:
    """Read one `kB` line (VmRSS, VmHWM...) of /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {name} line")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); return False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def process_cpu_s() -> float:
    """User plus system CPU seconds of this process, all threads included."""
    user_s, system_s = process_cpu_split_s()
    return user_s + system_s


def process_cpu_split_s() -> tuple[float, float]:
    """User and system CPU seconds of this process, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def stat_fields(pid: int) -> list[str]:
    """Return the fields of /proc/<pid>/stat after the command name, from the state on."""
    # The command name is in brackets and may contain spaces, so split after its ")".
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def other_process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of another process, from /proc/<pid>/stat."""
    fields = stat_fields(pid)
    # The state is field 3 of the file, so utime (field 14) and stime (15) are 11 and 12 here.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def child_pids(parent: int) -> list[int]:
    """Return the pids of the running processes whose parent is `parent`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                # The parent pid is field 4 of the file, index 1 after the command name.
                if int(stat_fields(int(entry.name))[1]) == parent:
                    pids.append(int(entry.name))
    return pids


def cpu_of(pids: list[int]) -> dict[int, float]:
    """Return the CPU seconds of each process in `pids` that still runs."""
    seconds: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            seconds[pid] = other_process_cpu_s(pid)
    return seconds


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings, by processes alive at the second one.

    A process that started in between counts with all its CPU time. A process that exited
    in between is missed, so the result can be low when connections are replaced.
    """
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (not idle, not waiting for I/O)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def mb(kilobytes: float) -> float:
    return round(kilobytes / 1024, 1)
