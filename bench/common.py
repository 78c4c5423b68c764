"""What the socket benchmarks share: a gunicorn under control, users signed
up over HTTP, WebSockets carrying their cookies, and the figures.

The server and the load generator are pinned to different CPUs when there
are at least two, so the generator's work does not show up as server time.
"""
import asyncio
import json
import os
import platform
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import make_subscription  # noqa: E402,F401 - one key maker for tests and benches

PASSWORD = "bench-password"


def command_frames(subscription):
    """One socket's two alternating commands and the reply each one expects."""
    return [
        (json.dumps({"cmd": "push_subscribe", "subscription": subscription}), "push_subscribed"),
        (json.dumps({"cmd": "push_unsubscribe", "endpoint": subscription["endpoint"]}), "push_unsubscribed"),
    ]


def raise_fd_limit():
    """Lift the open-file limit to the hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_split(pin):
    """(server CPUs, generator CPUs): the last CPU drives load, the rest serve."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return set(cpus[:-1]), {cpus[-1]}


def pin_to(cpus):
    if cpus:
        os.sched_setaffinity(0, cpus)


def machine(server_cpus, generator_cpus):
    pinning = f"server on CPUs {sorted(server_cpus)}, generator on {sorted(generator_cpus)}" if server_cpus else "not pinned"
    return (f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, {pinning}, open files {raise_fd_limit()}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """One gunicorn master on a loopback port, its output kept in ``log``."""

    def __init__(self, app, log, *, worker_class="gthread", workers=1, threads=1,
                 connections=1000, env=None, cpus=None, pythonpath=ROOT):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log)
        self.argv = [
            sys.executable, "-m", "gunicorn", app,
            "-k", worker_class, "--workers", str(workers), "--threads", str(threads),
            "--worker-connections", str(connections), "--backlog", "2048",
            "--timeout", "120", "--bind", f"127.0.0.1:{self.port}",
            "--pythonpath", str(pythonpath), "--chdir", str(ROOT),
        ]
        self.env = {**os.environ, **(env or {})}
        self.cpus = cpus
        self.process = None

    def __enter__(self):
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=lambda: pin_to(self.cpus), start_new_session=True,
            )
        self.wait_ready()
        return self

    def __exit__(self, *exc):
        """Stop gracefully; a master that does not stop in time is killed
        with its whole process group, so no worker outlives the run."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer:\n{self.log.read_text()[-3000:]}")

    def worker_pids(self):
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def tracebacks(self):
        """Server-side failures: every traceback gunicorn or the app logged."""
        return self.log.read_text(errors="replace").count("Traceback")

    def first_traceback(self, lines=30):
        text = self.log.read_text(errors="replace")
        start = text.find("Traceback")
        return "\n".join(text[start:].splitlines()[:lines]) if start >= 0 else ""


def rss_kib(pid):
    """Resident memory of one process, from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pids):
    """CPU time (user + system) the processes have used so far, from ``/proc``;
    unlike throughput it barely moves when other programs share the CPUs."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def http_session():
    """No connection limit (sockets hold theirs for life), no shared cookie jar."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
    )


async def register_users(base_url, count, parallel=8):
    """Sign up ``count`` fresh users through ``POST /register``; return the
    ``Cookie`` header of each one's signed-in session."""
    prefix = f"bench-{secrets.token_hex(4)}"
    gate = asyncio.Semaphore(parallel)

    async def register(http, i):
        body = {"username": f"{prefix}-{i}", "password": PASSWORD}
        async with gate, http.post(f"{base_url}/register", json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"register: {resp.status} {await resp.text()}")
            return "; ".join(f"{name}={morsel.value}" for name, morsel in resp.cookies.items())

    async with http_session() as http:
        return await asyncio.gather(*(register(http, i) for i in range(count)))


async def open_socket(http, base_url, cookie=None):
    """A WebSocket to ``/ws`` as a same-origin browser page opens it."""
    headers = {"Origin": base_url}
    if cookie:
        headers["Cookie"] = cookie
    return await http.ws_connect(base_url.replace("http", "ws", 1) + "/ws", headers=headers)


def percentile(ordered, fraction):
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
