"""Dispatch benchmark: the same N SMS through three Twilio clients to the local fake Twilio.

    .venv/bin/python bench/dispatch.py [--n 5000] [--concurrency 64] [--repeat 1]

Contenders, each sending N messages over HTTP on 127.0.0.1 to one fake Twilio:

- ours: `TwilioSmsAdapter.send` (official `twilio` SDK, `create_async`, aiohttp), driven as
  the dispatcher drives it: `asyncio.gather` over the messages behind a semaphore of
  `--concurrency` (the dispatcher keeps `TwilioAdapter.max_concurrent_sends`, 100, in flight per worker).
- apprise: Apprise's Twilio plugin (`twilio://SID:TOKEN@FROM/TO`), one `Apprise.notify` per
  message in a loop (Apprise is synchronous, one request at a time per URL). Redirected by
  an instance attribute `notify_sms_url` (the class attribute holds api.twilio.com); its
  throttle, `request_rate_per_sec = 0.2` (at least 0.2 s between requests), set to 0.
- twilio-sdk-sync: a plain loop over `Client(...).messages.create(...)`, its requests-based
  `TwilioHttpClient` subclassed to rewrite the Twilio origin, as our adapter does.

A reference row comes first, "ceiling": raw aiohttp POSTs of the same form and auth at the
same concurrency, no SDK. It shows what the fake absorbs from a near-minimal client, so a
slow contender can be told from a slow fake.

The fake runs in processes of its own (`--fake-workers`, default 1) so client and server do
not share a GIL: uvicorn with no access log, zero latency, no status callbacks (nobody sends
a StatusCallback), all workers accepting on one socket that this script binds. It is
stopped at the end, whatever happens. After each run the fake's witness log (JSON lines,
appended by every worker) must hold exactly the N bodies sent; lost or duplicated messages
are flagged and make the exit status 1.

Timing is wall clock around the N sends only; client construction and a warm-up (`--warmup`
messages, which open connections and load the SDK's lazy modules) are outside it. CPU per
message is measured for the client process, the fake's processes and everything else on
the machine ("other load": other people's work makes a run noisy, and the table says so).
Results: a table on stdout, appended to `bench/results/dispatch-<date>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

HOST = "127.0.0.1"
# Apprise validates these: SID `^AC[a-f0-9]+$`, token `^[a-z0-9]+$` (the fake's default
# token has dashes, so the benchmark runs the fake with its own).
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "0badc0ffee0123456789abcdef012345"
FROM_NUMBER = "+15005550006"  # Twilio's test "valid From"
APPRISE_TO = "+16465550100"  # Apprise's URL names its recipient; its bodies are distinct
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
ENV_TOKEN = "BENCH_FAKE_TWILIO_AUTH_TOKEN"
ENV_SID = "BENCH_FAKE_TWILIO_ACCOUNT_SID"
ENV_LOG = "BENCH_FAKE_TWILIO_LOG_PATH"
FAKE_START_TIMEOUT_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0
USABLE_CPUS = len(os.sched_getaffinity(0))


# --------------------------------------------------------------------------- the fake side


def fake_twilio_app_from_env():
    """The fake Twilio for the benchmark, built in each worker process.

    No status latency and no callbacks (no contender sends a StatusCallback); the witness
    log is a JSON-lines file so every worker process appends to the same record.
    """
    from orchestrator.fakes.twilio import FakeTwilioSettings, create_fake_twilio_app

    settings = FakeTwilioSettings(
        auth_token=os.environ[ENV_TOKEN],
        account_sid=os.environ[ENV_SID],
        response_latency_seconds=0.0,
        status_latency_seconds=0.0,
        log_path=Path(os.environ[ENV_LOG]),
    )
    return create_fake_twilio_app(settings)


def serve_fake_worker(fd: int, ready_path: Path) -> int:
    """One fake worker (`dispatch.py _serve-fake FD READY_PATH`): uvicorn on an inherited socket.

    The benchmark binds the listening socket itself and every worker accepts from it. Not
    `uvicorn --workers N`: its supervisor binds with `proto=0`, so asyncio never sets
    TCP_NODELAY on accepted connections and each keep-alive request after the first waits
    ~40 ms for the client's delayed ACK (Kludex/uvicorn#3149; measured here: the synchronous
    SDK loop fell from ~450 to 22 messages/s). A socket made with IPPROTO_TCP avoids that.
    """
    import uvicorn

    stop_with_parent()
    listener = socket.socket(fileno=fd)  # family, type and proto read from the descriptor
    config = uvicorn.Config(fake_twilio_app_from_env(), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)

    async def serve() -> None:
        async def announce_ready() -> None:
            while not server.started:
                await asyncio.sleep(0.02)
            ready_path.write_text(str(os.getpid()))

        announcer = asyncio.create_task(announce_ready())
        await server.serve(sockets=[listener])
        announcer.cancel()

    asyncio.run(serve())
    return 0


def stop_with_parent() -> None:
    """Linux: have the kernel send SIGTERM if the benchmark dies without stopping us (SIGKILL)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class FakeTwilioProcesses:
    """The fake in `workers` processes of its own, all accepting on one loopback socket."""

    def __init__(self, workers: int, workdir: Path) -> None:
        self.workers = workers
        self.workdir = workdir
        self.log_path = workdir / "witness.jsonl"
        self.processes: list[subprocess.Popen] = []
        self.port = 0
        self.base_url = ""

    def start(self) -> None:
        env = {
            **os.environ,
            ENV_TOKEN: AUTH_TOKEN,
            ENV_SID: ACCOUNT_SID,
            ENV_LOG: str(self.log_path),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, 0))
            listener.listen(2048)
            self.port = listener.getsockname()[1]
            self.base_url = f"http://{HOST}:{self.port}"
            fd = listener.fileno()
            for index in range(self.workers):
                ready = self.workdir / f"ready-{index}"
                with (self.workdir / f"fake-twilio-{index}.out").open("wb") as output:
                    self.processes.append(
                        subprocess.Popen(
                            [sys.executable, str(Path(__file__).resolve()), "_serve-fake", str(fd), str(ready)],
                            env=env,
                            stdout=output,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            pass_fds=(fd,),
                            start_new_session=True,
                        )
                    )
        # The children hold the socket now; ours is closed.
        deadline = time.monotonic() + FAKE_START_TIMEOUT_SECONDS
        while True:
            if any(process.poll() is not None for process in self.processes):
                raise RuntimeError(f"fake Twilio exited at start:\n{self.output()}")
            ready = all((self.workdir / f"ready-{index}").exists() for index in range(self.workers))
            if ready and self._answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"fake Twilio did not start:\n{self.output()}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            connection.request("GET", "/_admin/messages")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def cpu_seconds(self) -> float:
        """User + system CPU of every worker so far."""
        ticks = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def output(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-2000:] for path in sorted(self.workdir.glob("*.out")))

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL for any straggler."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def machine_busy_seconds() -> float:
    """CPU time every process on the machine spent so far (from /proc/stat), in seconds."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------- the client side


def body_for(tag: str, index: int) -> str:
    return f"{tag}:{index:06d} Your code is {index % 1000000:06d}. Reply STOP to opt out."


def number_for(tag_index: int, index: int) -> str:
    """A distinct, valid, non-magic US number per (contender, message)."""
    return f"+1{212 + 100 * tag_index}{index:07d}"


@dataclass
class Outcome:
    accepted: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, ok: bool, error: str | None = None) -> None:
        if ok:
            self.accepted += 1
        else:
            self.failed += 1
            if error and len(self.errors) < 5:
                self.errors.append(error)


@dataclass
class RunResult:
    """One measured run of one contender."""

    name: str
    round: int
    concurrency: int
    n: int
    seconds: float
    messages_per_second: float
    client_accepted: int
    client_failed: int
    client_errors: list[str]
    witnessed: int  # distinct expected bodies the fake recorded
    duplicates: int  # bodies recorded more than once
    unexpected: int  # recorded with this run's tag but not among the N bodies
    distinct_to: int
    client_cpu_seconds: float
    server_cpu_seconds: float
    # Everything else the machine ran meanwhile (other people's tests, the kernel's share of
    # loopback networking): a large value means the figures were taken on a busy machine.
    other_cpu_seconds: float

    @property
    def lost(self) -> int:
        return self.n - self.witnessed

    @property
    def correct(self) -> bool:
        return (
            self.witnessed == self.n
            and self.duplicates == 0
            and self.unexpected == 0
            and self.client_accepted == self.n
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "lost": self.lost, "correct": self.correct}


class AsyncRunner:
    """Runs `_run` on an event loop of its own, kept across warm-up and the measured run."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        self.base_url = base_url
        self.concurrency = concurrency
        self.loop = asyncio.new_event_loop()

    def run(self, tag: str, tag_index: int, indices: range) -> Outcome:
        return self.loop.run_until_complete(self._run(tag, tag_index, indices))

    async def _run(self, tag: str, tag_index: int, indices: range) -> Outcome:
        raise NotImplementedError

    async def _aclose(self) -> None:
        pass

    def close(self) -> None:
        # Sends still pending after an interruption (--max-seconds) are cancelled first.
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self._aclose())
        self.loop.close()


class OursRunner(AsyncRunner):
    """Our adapter, one instance (one aiohttp session) for warm-up and the measured run."""

    adapter = None

    async def _run(self, tag: str, tag_index: int, indices: range) -> Outcome:
        from orchestrator.channels.base import Channel, OutboundMessage
        from orchestrator.channels.base import Outcome as SendOutcome
        from orchestrator.channels.twilio import TwilioSmsAdapter

        if self.adapter is None:
            self.adapter = TwilioSmsAdapter(
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
                from_number=FROM_NUMBER,
                api_base_url=self.base_url,
                timeout_seconds=REQUEST_TIMEOUT_SECONDS,
            )
        adapter = self.adapter
        outcome = Outcome()
        gate = asyncio.Semaphore(self.concurrency)

        async def send(index: int) -> None:
            message = OutboundMessage(
                send_key=f"{tag}:{index}",
                channel=Channel.sms,
                to=number_for(tag_index, index),
                body=body_for(tag, index),
            )
            async with gate:
                result = await adapter.send(message)
            ok = result.outcome is SendOutcome.accepted
            outcome.add(ok, None if ok else f"{result.error_code} {result.error_message}")

        await asyncio.gather(*(send(index) for index in indices))
        return outcome

    async def _aclose(self) -> None:
        if self.adapter is not None:
            await self.adapter.aclose()


class AppriseRunner:
    def __init__(self, base_url: str) -> None:
        import apprise

        url = f"twilio://{ACCOUNT_SID}:{AUTH_TOKEN}@{FROM_NUMBER.lstrip('+')}/{APPRISE_TO.lstrip('+')}"
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            raise RuntimeError(f"Apprise rejected the Twilio URL {url}")
        # apprise/plugins/twilio.py posts to `self.notify_sms_url.format(sid=...)`, a class
        # attribute ("https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json");
        # an instance attribute of the same name redirects this one plugin to the fake.
        plugin.notify_sms_url = base_url + "/2010-04-01/Accounts/{sid}/Messages.json"
        # NotifyTwilio.request_rate_per_sec = 0.2: URLBase.throttle() sleeps so that requests
        # are at least 0.2 s apart. 0 disables it (throttle() returns at once).
        plugin.request_rate_per_sec = 0
        self.apprise = apprise.Apprise()
        self.apprise.add(plugin)

    def run(self, tag: str, tag_index: int, indices: range) -> Outcome:
        outcome = Outcome()
        for index in indices:
            ok = bool(self.apprise.notify(body=body_for(tag, index)))
            outcome.add(ok, None if ok else "Apprise.notify returned False (see its log)")
        return outcome

    def close(self) -> None:
        pass


class TwilioSyncRunner:
    def __init__(self, base_url: str) -> None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        from orchestrator.channels.twilio import TWILIO_ORIGIN

        class RedirectingHttpClient(TwilioHttpClient):
            """The SDK's requests client, sending to the fake instead of api.twilio.com."""

            def request(self, method, url, *args, **kwargs):
                url = TWILIO_ORIGIN.sub(lambda _: base_url, url, count=1)
                return super().request(method, url, *args, **kwargs)

        self.http_client = RedirectingHttpClient(timeout=REQUEST_TIMEOUT_SECONDS)
        self.client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=self.http_client)

    def run(self, tag: str, tag_index: int, indices: range) -> Outcome:
        from requests import RequestException
        from twilio.base.exceptions import TwilioException

        outcome = Outcome()
        for index in indices:
            try:
                created = self.client.messages.create(
                    to=number_for(tag_index, index), from_=FROM_NUMBER, body=body_for(tag, index)
                )
                outcome.add(bool(created.sid))
            except (TwilioException, RequestException) as error:
                outcome.add(False, repr(error))
        return outcome

    def close(self) -> None:
        if self.http_client.session is not None:
            self.http_client.session.close()


class CeilingRunner(AsyncRunner):
    """Raw aiohttp, the same form and auth as the SDK sends: the near-minimal client."""

    session = None

    async def _run(self, tag: str, tag_index: int, indices: range) -> Outcome:
        import aiohttp

        if self.session is None:
            credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency),
                headers={"Authorization": f"Basic {credentials}", "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            )
        session = self.session
        outcome = Outcome()
        gate = asyncio.Semaphore(self.concurrency)

        async def send(index: int) -> None:
            form = {"To": number_for(tag_index, index), "From": FROM_NUMBER, "Body": body_for(tag, index)}
            async with gate:
                try:
                    async with session.post(self.base_url + MESSAGES_PATH, data=form) as response:
                        text = await response.text()
                        outcome.add(response.status == 201, f"{response.status} {text[:200]}")
                except (aiohttp.ClientError, TimeoutError) as error:
                    outcome.add(False, repr(error))

        await asyncio.gather(*(send(index) for index in indices))
        return outcome

    async def _aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


CONTENDERS = {
    "ceiling": "reference: raw aiohttp POSTs, no SDK (what the fake absorbs)",
    "ours": "TwilioSmsAdapter.send, twilio SDK create_async (aiohttp), gather + semaphore",
    "apprise": "Apprise Twilio plugin (requests), one notify per message, throttle 0",
    "twilio-sdk-sync": "twilio SDK Client.messages.create (requests), synchronous loop",
}


CONCURRENT = ("ceiling", "ours")  # the others are synchronous loops


def make_runner(name: str, base_url: str, concurrency: int):
    if name == "ceiling":
        return CeilingRunner(base_url, concurrency)
    if name == "ours":
        return OursRunner(base_url, concurrency)
    if name == "apprise":
        return AppriseRunner(base_url)
    return TwilioSyncRunner(base_url)


# ---------------------------------------------------------------------------- verification


def witness_counts(log_path: Path, tag: str, n: int) -> tuple[int, int, int, int]:
    """(witnessed, duplicates, unexpected, distinct To) of one run, from the fake's log."""
    from orchestrator.fakes.twilio import read_witness_log

    prefix = tag + ":"
    entries = [e for e in read_witness_log(log_path) if (e.get("body") or "").startswith(prefix)]
    bodies = [entry["body"] for entry in entries]
    distinct = set(bodies)
    expected = {body_for(tag, index) for index in range(n)}
    tos = {entry["to"] for entry in entries}
    return len(distinct & expected), len(bodies) - len(distinct), len(distinct - expected), len(tos)


# ------------------------------------------------------------------------------------ main


def run_contender(name: str, round_index: int, fake: FakeTwilioProcesses, args: argparse.Namespace) -> RunResult:
    tag_index = list(CONTENDERS).index(name)
    concurrency = args.concurrency if name in CONCURRENT else 1
    runner = make_runner(name, fake.base_url, args.concurrency)
    try:
        if args.warmup:
            warm = runner.run(f"warmup-{name}-r{round_index}", tag_index, range(args.warmup))
            if warm.failed:
                raise RuntimeError(f"{name}: warm-up failed: {warm.errors}")
        tag = f"bench-{name}-r{round_index}"
        machine_cpu = machine_busy_seconds()
        client_cpu = time.process_time()
        server_cpu = fake.cpu_seconds()
        started = time.perf_counter()
        outcome = runner.run(tag, tag_index, range(args.n))
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        server_cpu = fake.cpu_seconds() - server_cpu
        machine_cpu = machine_busy_seconds() - machine_cpu
    finally:
        runner.close()
    witnessed, duplicates, unexpected, distinct_to = witness_counts(fake.log_path, tag, args.n)
    return RunResult(
        name=name,
        round=round_index,
        concurrency=concurrency,
        n=args.n,
        seconds=seconds,
        messages_per_second=args.n / seconds,
        client_accepted=outcome.accepted,
        client_failed=outcome.failed,
        client_errors=outcome.errors,
        witnessed=witnessed,
        duplicates=duplicates,
        unexpected=unexpected,
        distinct_to=distinct_to,
        client_cpu_seconds=client_cpu,
        server_cpu_seconds=server_cpu,
        other_cpu_seconds=max(0.0, machine_cpu - client_cpu - server_cpu),
    )


def summarize(runs: list[RunResult]) -> list[dict[str, Any]]:
    """Per contender: the median run (by throughput) and the spread over the runs."""
    summaries = []
    for name, description in CONTENDERS.items():
        mine = sorted((run for run in runs if run.name == name), key=lambda run: run.messages_per_second)
        if not mine:
            continue
        rate = statistics.median(run.messages_per_second for run in mine)
        summaries.append(
            {
                "name": name,
                "description": description,
                "concurrency": mine[0].concurrency,
                "n": mine[0].n,
                "runs": len(mine),
                "median_messages_per_second": rate,
                "min_messages_per_second": mine[0].messages_per_second,
                "max_messages_per_second": mine[-1].messages_per_second,
                "median_seconds": statistics.median(run.seconds for run in mine),
                "client_cpu_ms_per_message": statistics.median(1000 * run.client_cpu_seconds / run.n for run in mine),
                "server_cpu_ms_per_message": statistics.median(1000 * run.server_cpu_seconds / run.n for run in mine),
                "other_cpu_percent_of_machine": statistics.median(
                    100 * run.other_cpu_seconds / (run.seconds * USABLE_CPUS) for run in mine
                ),
                "witnessed": sum(run.witnessed for run in mine),
                "sent": sum(run.n for run in mine),
                "lost": sum(run.lost for run in mine),
                "duplicates": sum(run.duplicates for run in mine),
                "correct": all(run.correct for run in mine),
            }
        )
    ours = next((summary for summary in summaries if summary["name"] == "ours"), None)
    for summary in summaries:
        summary["ratio_vs_ours"] = (
            summary["median_messages_per_second"] / ours["median_messages_per_second"] if ours else None
        )
    return summaries


def machine_info() -> dict[str, Any]:
    from importlib.metadata import version

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    model = models[0] if models else platform.processor() or "unknown"
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            name: version(name)
            for name in ("twilio", "aiohttp", "apprise", "requests", "uvicorn", "fastapi", "starlette")
        },
        "uvloop": _installed("uvloop"),
        "httptools": _installed("httptools"),
        "load_average_at_start": os.getloadavg(),
    }


def _installed(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None


def print_table(summaries: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(
        f"machine: {info['usable_cpus']} usable CPUs ({info['cpu_count']} total), {info['cpu_model']}, "
        f"Python {info['python']}, load average {info['load_average_at_start'][0]:.2f} at start"
    )
    print(
        f"fake Twilio: {args.fake_workers} process(es), uvicorn "
        f"{'httptools' if info['httptools'] else 'h11'} + {'uvloop' if info['uvloop'] else 'asyncio'}; "
        f"N={args.n}, concurrency {args.concurrency}, {args.repeat} round(s), median shown"
    )
    header = (
        f"{'contender':<16} {'conc':>4} {'N':>6} {'witnessed':>11} {'seconds':>8} {'msg/s':>7} "
        f"{'range':>11} {'vs ours':>8} {'client ms/msg':>13} {'server ms/msg':>13} {'other load':>10}"
    )
    print(header)
    print("-" * len(header))
    for summary in summaries:
        ratio = summary["ratio_vs_ours"]
        spread = f"{summary['min_messages_per_second']:.0f}-{summary['max_messages_per_second']:.0f}"
        print(
            f"{summary['name']:<16} {summary['concurrency']:>4} {summary['n']:>6} "
            f"{str(summary['witnessed']) + '/' + str(summary['sent']):>11} "
            f"{summary['median_seconds']:>8.2f} {summary['median_messages_per_second']:>7.0f} "
            f"{spread:>11} {(f'{ratio:.2f}x' if ratio else '-'):>8} "
            f"{summary['client_cpu_ms_per_message']:>13.3f} {summary['server_cpu_ms_per_message']:>13.3f} "
            f"{summary['other_cpu_percent_of_machine']:>9.0f}%"
        )
    print(
        "witnessed: distinct messages the fake's witness log recorded, of those sent; "
        "ms/msg: CPU per message (client process, fake processes);\nother load: CPU used by "
        "anything else meanwhile, % of the machine (more than a few % means a noisy run)"
    )


def flag_incorrect(runs: list[RunResult]) -> None:
    for run in runs:
        if not run.correct:
            print(
                f"!! {run.name} round {run.round + 1}: LOST {run.lost} of {run.n}, duplicates "
                f"{run.duplicates}, unexpected {run.unexpected}; client accepted "
                f"{run.client_accepted}, failed {run.client_failed}: {run.client_errors}"
            )


def write_results(
    runs: list[RunResult], summaries: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace
) -> Path:
    now = datetime.now(UTC)
    results_dir = BENCH_DIR / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"dispatch-{now.date().isoformat()}.json"
    document = json.loads(path.read_text()) if path.exists() else {"benchmark": "dispatch", "runs": []}
    document["runs"].append(
        {
            "finished_at": now.isoformat(timespec="seconds"),
            "command": " ".join([".venv/bin/python", "bench/dispatch.py", *args.argv]),
            "n": args.n,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "fake_workers": args.fake_workers,
            "repeat": args.repeat,
            "machine": {**info, "load_average_at_end": os.getloadavg()},
            "summary": summaries,
            "rounds": [run.as_json() for run in runs],
        }
    )
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/dispatch.py", description="N SMS through our Twilio adapter, Apprise and the sync twilio SDK."
    )
    parser.add_argument("--n", type=int, default=5000, help="messages per contender and round")
    parser.add_argument("--concurrency", type=int, default=64, help="in-flight sends for ours and ceiling")
    parser.add_argument("--warmup", type=int, default=50, help="untimed messages before each run")
    parser.add_argument("--fake-workers", type=int, default=1, help="processes serving the fake Twilio")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the table shows medians")
    parser.add_argument("--only", nargs="+", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--max-seconds", type=int, default=270, help="abort the whole run after this")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    if min(args.n, args.concurrency, args.fake_workers, args.repeat) < 1 or args.warmup < 0:
        parser.error("--n, --concurrency, --fake-workers and --repeat must be >= 1, --warmup >= 0")
    args.argv = argv
    return args


def on_alarm(signum, frame):
    raise TimeoutError("the benchmark exceeded --max-seconds")


def on_terminate(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")  # unwinds, so the fake is stopped too


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve-fake"]:
        return serve_fake_worker(int(argv[1]), Path(argv[2]))
    args = parse_args(argv)
    # Loopback only: no proxy from the environment may intercept 127.0.0.1 (requests honours
    # *_PROXY variables; aiohttp does not by default).
    os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), HOST, "localhost"]))
    info = machine_info()
    runs: list[RunResult] = []
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_terminate)
    signal.alarm(args.max_seconds)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as workdir:
            fake = FakeTwilioProcesses(args.fake_workers, Path(workdir))
            try:
                fake.start()
                print(f"fake Twilio at {fake.base_url}, pids {fake.pids()}", flush=True)
                for round_index in range(args.repeat):
                    for name in (name for name in CONTENDERS if name in args.only):
                        run = run_contender(name, round_index, fake, args)
                        runs.append(run)
                        print(
                            f"  round {round_index + 1}/{args.repeat} {name:<16} "
                            f"{run.messages_per_second:7.0f} msg/s  {run.witnessed}/{run.n} witnessed"
                            f"{'' if run.correct else '  !! INCORRECT'}",
                            flush=True,
                        )
            finally:
                fake.stop()
    finally:
        signal.alarm(0)
    summaries = summarize(runs)
    print_table(summaries, info, args)
    flag_incorrect(runs)
    if not args.no_save:
        print(f"results appended to {write_results(runs, summaries, info, args).relative_to(REPO)}")
    return 0 if all(run.correct for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
