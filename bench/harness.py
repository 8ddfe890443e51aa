"""What the ingest, end-to-end and timer benchmarks share: a throwaway PostgreSQL database,
child processes in process groups of their own (always stopped, whatever happens), CPU and
RSS read from /proc, a description of the machine, and a results file per day.

Everything listens and connects on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ------------------------------------------------------------------------------ database


@contextlib.contextmanager
def scratch_database(prefix: str, keep: bool = False) -> Iterator[str]:
    """A database of our own on the local PostgreSQL, dropped (WITH FORCE) at the end."""
    import psycopg

    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def production_autovacuum() -> Iterator[bool]:
    """PostgreSQL's autovacuum on for the benchmark, as every production server runs it (its
    default); put back as it was afterwards. This machine's server runs with it off, so without
    this a long benchmark plans on statistics from its set-up and walks dead rows no server
    keeps. Server-wide: the benchmark must run alone. Yields whether it was already on."""
    import psycopg

    # A `kill` (SIGTERM) ends the benchmark as Ctrl-C does, through its `finally` blocks, which
    # put the setting back and drop the scratch database, instead of leaving both behind.
    # (KeyboardInterrupt, not SystemExit: psycopg cancels a query under way and re-raises it.)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        was_on = connection.execute("SHOW autovacuum").fetchone()[0] == "on"
        if not was_on:
            connection.execute("ALTER SYSTEM SET autovacuum = on")
            connection.execute("SELECT pg_reload_conf()")
    try:
        yield was_on
    finally:
        if not was_on:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
                connection.execute("ALTER SYSTEM RESET autovacuum")
                connection.execute("SELECT pg_reload_conf()")
        signal.signal(signal.SIGTERM, previous)


def migrate(database_url: str, log: Path) -> None:
    """`orchestrator migrate`, as an operator runs it before starting many processes."""
    with log.open("ab") as output:
        subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "migrate"],
            cwd=REPO,
            check=True,
            timeout=120,
            env=dict(os.environ, DATABASE_URL=database_url),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def backend_pids(database_url: str, admin=None) -> list[int]:
    """PostgreSQL backends serving this database (to charge their CPU to the benchmark).
    `admin`: an open autocommit connection to ask through, for callers that ask often."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    if admin is not None:
        return [row[0] for row in admin.execute(query, (name,)).fetchall()]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as connection:
        return [row[0] for row in connection.execute(query, (name,)).fetchall()]


# ----------------------------------------------------------------------------- processes


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn(
    command: list[str], env: dict[str, str] | None = None, log: Path | None = None, cwd: Path = REPO
) -> subprocess.Popen:
    """A child in a process group of its own (so its children can be killed with it), which the
    kernel also kills if this benchmark dies without cleaning up."""
    output = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        if log:
            output.close()


def kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def stop_group(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the whole group, then SIGKILL to whatever is left."""
    if process.poll() is None:
        kill_group(process, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    kill_group(process, signal.SIGKILL)  # stragglers in the group (children of a dead parent)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


class Processes:
    """Every process a benchmark started; `stop_all` in a `finally` stops them all."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def spawn(self, command: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
        process = spawn(command, env, log)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            stop_group(process)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args} exited with {process.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def python_env(**extra: str) -> dict[str, str]:
    return dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), **extra
    )


# ------------------------------------------------------------------------- /proc readers


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (uvicorn's and Celery's pool children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process."""
    result = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            result[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return result


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two samples; a process that appeared in between counts in full."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


def machine_busy_seconds() -> float:
    """CPU time of everything on the machine so far (from /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


# ------------------------------------------------------------------------ reporting


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    packages = {}
    for name in (
        "sqlalchemy",
        "psycopg",
        "fastapi",
        "uvicorn",
        "pydantic",
        "twilio",
        "aiohttp",
        "celery",
        "kombu",
        "amqp",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": packages,
        "load_average": os.getloadavg(),
    }


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def append_results(benchmark: str, run: dict[str, Any]) -> Path:
    """Append one run to bench/results/<benchmark>-<date>.json."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{benchmark}-{datetime.now(timezone.utc):%Y-%m-%d}.json"
    document = json.loads(path.read_text()) if path.exists() else {"benchmark": benchmark, "runs": []}
    run = {
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", *[os.path.relpath(sys.argv[0], REPO)], *sys.argv[1:]]),
        "machine": machine(),
        **run,
    }
    document["runs"].append(run)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


# ------------------------------------------------------------------ the service in this process


async def in_process_service(database_url: str, now: datetime, **settings: Any) -> tuple[Any, Any]:
    """The API in this process on a simulated clock at `now`, with the local providers and no
    worker loop: what the read benchmarks time through httpx's ASGITransport. Returns
    (runtime, app); the caller closes the runtime."""
    from orchestrator.api.app import create_app
    from orchestrator.clock import SimulatedClock
    from orchestrator.config import Settings
    from orchestrator.startup import build_runtime

    configured = Settings(
        database_url=database_url,
        simulated_clock=True,
        email_provider="local",
        sms_provider="local",
        whatsapp_provider="local",
        **settings,
    )
    runtime = await build_runtime(configured, clock=SimulatedClock(now))
    app = create_app(configured, run_worker=False, runtime=runtime)
    app.state.runtime, app.state.worker_loop = runtime, None
    return runtime, app
