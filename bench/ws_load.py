"""Command throughput over many authenticated sockets, against a bare echo app.

flaskpush and ``echo_app.py`` run side by side under the same gunicorn
settings. For each concurrency C, C sockets each do push_subscribe /
push_unsubscribe round trips (real P-256 keys, one endpoint per socket) as
fast as the replies come; the echo app gets the same frames. The output is
commands per second, p50 and p99 latency for both, and flaskpush's
throughput as a ratio of the echo app's, measured in the same run. The two
apps take turns in short windows (``--rounds``) and the ratio is the median
of each round's, so that a neighbour's load on a shared machine falls on both
alike. The servers' CPU use over the windows gives the same ratio per CPU
second.

    python bench/ws_load.py                       # SQLite, 1 worker, C = 50 200 1000
    python bench/ws_load.py --database postgresql://USER@HOST:5432/DB --workers 4
"""
import argparse
import asyncio
import json
import multiprocessing
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

import common

TARGET_C, TARGET_RATIO, TARGET_TAIL = 200, 0.5, 10


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conns", type=int, nargs="+", default=[50, 200, 1000], help="concurrent sockets, one run each")
    parser.add_argument("--users", type=int, default=50, help="users signed up; sockets share them like browser tabs")
    parser.add_argument("--duration", type=float, default=5, help="measured seconds per window")
    parser.add_argument("--rounds", type=int, default=3, help="windows per app and C, taken in turns")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each run")
    parser.add_argument("--database", help="FLASKPUSH_DATABASE (default: SQLite in a fresh instance folder)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class, for both apps")
    parser.add_argument("--threads", type=int, help="gthread threads per worker (default: max C + 16)")
    parser.add_argument("--generators", type=int, default=1, help="load generator processes")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and generator to separate CPUs")
    return parser.parse_args()


@dataclass
class Result:
    throughput: float
    latencies: list  # sorted
    errors: int
    samples: list
    generator_cpu: float  # busiest generator's CPU share: near 1.0 means it, not the server, limits
    server_cpu: float  # server workers' CPU share over the window: below 1.0 per worker means they wait

    @property
    def p50(self):
        return common.percentile(self.latencies, 0.50)

    @property
    def p99(self):
        return common.percentile(self.latencies, 0.99)

    @classmethod
    def merge(cls, rounds):
        """One app's figures over all its windows."""
        return cls(
            throughput=statistics.mean(r.throughput for r in rounds),
            latencies=sorted(lat for r in rounds for lat in r.latencies),
            errors=sum(r.errors for r in rounds),
            samples=[s for r in rounds for s in r.samples][:5],
            generator_cpu=max(r.generator_cpu for r in rounds),
            server_cpu=statistics.mean(r.server_cpu for r in rounds),
        )

    @property
    def cpu_per_command(self):
        """Server CPU seconds per command: steadier than throughput on a shared machine."""
        return self.server_cpu / self.throughput if self.throughput else float("nan")

    def line(self, c, name):
        return (f"C={c:<5} {name:<9} commands/s={self.throughput:9.0f}  p50={self.p50 * 1000:8.2f} ms"
                f"  p99={self.p99 * 1000:8.2f} ms  errors={self.errors}  generator cpu={self.generator_cpu:.0%}"
                f"  server cpu={self.server_cpu:.0%} ({self.cpu_per_command * 1e6:.0f} us/command)")


def answered(message, frame, want, echo):
    if message.type != aiohttp.WSMsgType.TEXT:
        return False
    return message.data == frame if echo else json.loads(message.data).get("cmd") == want


async def server_cpu(pids, begin, end):
    """The server workers' CPU share between ``begin`` and ``end`` (monotonic)."""
    await asyncio.sleep(begin - time.monotonic())
    used = common.cpu_seconds(pids)
    await asyncio.sleep(end - time.monotonic())
    return (common.cpu_seconds(pids) - used) / (end - begin)


async def drive(url, pids, cookies, frame_pairs, echo, barrier, warmup, duration):
    """Open this generator's sockets, start with the others, and run round
    trips until the window closes; latencies count only inside it."""
    latencies, errors, samples = [], 0, []

    def fail(what):
        nonlocal errors
        errors += 1
        if len(samples) < 5:
            samples.append(what)

    async with common.http_session() as http:
        gate = asyncio.Semaphore(100)

        async def connect(cookie):
            async with gate:
                return await common.open_socket(http, url, cookie)

        opened = await asyncio.gather(*(connect(c) for c in cookies), return_exceptions=True)
        sockets = []
        for ws, pair in zip(opened, frame_pairs):
            if isinstance(ws, BaseException):
                fail(f"connect: {ws!r}")
            else:
                sockets.append((ws, pair))
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait, 300)
        started, cpu = time.monotonic(), time.process_time()
        begin = started + warmup
        end = begin + duration

        async def round_trips(ws, pair):
            turn = 0
            while (sent := time.monotonic()) < end:
                frame, want = pair[turn % 2]
                turn += 1
                try:
                    await ws.send_str(frame)
                    message = await ws.receive(timeout=30)
                except Exception as exc:
                    return fail(f"{want}: {exc!r}")
                done = time.monotonic()
                if not answered(message, frame, want, echo):
                    fail(f"{want}: {message.type.name} {str(message.data)[:200]}")
                    if message.type != aiohttp.WSMsgType.TEXT:
                        return
                elif begin <= done < end:
                    latencies.append(done - sent)

        server = asyncio.create_task(server_cpu(pids, begin, end))
        await asyncio.gather(*(round_trips(ws, pair) for ws, pair in sockets))
        busy = (time.process_time() - cpu) / (time.monotonic() - started)
        await asyncio.gather(*(ws.close() for ws, _ in sockets), return_exceptions=True)
    return latencies, errors, samples, busy, await server


def generator(cpus, results, *job):
    common.pin_to(cpus)
    try:
        results.put(asyncio.run(drive(*job)))
    except Exception as exc:
        results.put(([], 1, [f"generator: {exc!r}"], 0.0, 0.0))


def measure(server, cookies, frame_pairs, echo, args, cpus):
    """Spread the sockets over the generator processes and merge their figures."""
    context = multiprocessing.get_context("fork")
    results, barrier = context.Queue(), context.Barrier(args.generators)
    procs = [
        context.Process(target=generator, args=(
            cpus, results, server.url, server.worker_pids(), cookies[i::args.generators], frame_pairs[i::args.generators],
            echo, barrier, args.warmup, args.duration))
        for i in range(args.generators)
    ]
    for proc in procs:
        proc.start()
    parts = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    latencies = sorted(lat for part in parts for lat in part[0])
    return Result(
        throughput=len(latencies) / args.duration,
        latencies=latencies,
        errors=sum(part[1] for part in parts),
        samples=[s for part in parts for s in part[2]],
        generator_cpu=max(part[3] for part in parts),
        server_cpu=max(part[4] for part in parts),
    )


def ratio(fp, echo):
    return fp.throughput / echo.throughput if echo.throughput else 0.0


def verdict(c, rounds):
    """The median of each round's flaskpush/echo ratio, and the target's verdict."""
    ratios = [ratio(fp, echo) for fp, echo in zip(rounds["flaskpush"], rounds["echo"])]
    fp, echo = Result.merge(rounds["flaskpush"]), Result.merge(rounds["echo"])
    median = statistics.median(ratios)
    tail = fp.p99 / fp.p50 if fp.p50 else float("inf")
    per_cpu = echo.cpu_per_command / fp.cpu_per_command if fp.throughput and echo.throughput else 0.0
    line = (f"C={c:<5} ratio     flaskpush/echo throughput={median:.2f} (rounds: {' '.join(f'{r:.2f}' for r in ratios)})"
            f"  per server CPU second={per_cpu:.2f}  flaskpush p99/p50={tail:.1f}")
    if c == TARGET_C:
        met = median >= TARGET_RATIO and tail < TARGET_TAIL and fp.errors == 0 and echo.errors == 0
        line += f"  target (>= {TARGET_RATIO}, p99 < {TARGET_TAIL}x p50, no errors): {'met' if met else 'MISSED'}"
    return line


def main():
    args = parse_args()
    server_cpus, generator_cpus = common.cpu_split(not args.no_pin)
    threads = args.threads or max(args.conns) + 16
    settings = {"workers": args.workers, "threads": threads, "connections": threads + 64, "cpus": server_cpus,
                "worker_class": args.worker_class}
    print(common.machine(server_cpus, generator_cpus))
    print(f"# gunicorn -k {args.worker_class} --workers {args.workers} --threads {threads}; "
          f"database {'SQLite' if not args.database else args.database.split('@')[-1]}; "
          f"{args.users} users, {args.generators} generator process(es), {args.rounds} rounds of {args.duration:g} s per app")
    errors = 0
    with tempfile.TemporaryDirectory(prefix="flaskpush-bench-") as tmp:
        # Each socket sends as fast as replies come: lift the per-socket rate limit.
        env = {"FLASKPUSH_INSTANCE_PATH": str(Path(tmp, "instance")),
               "FLASKPUSH_WS_COMMAND_RATE": "1000000", "FLASKPUSH_WS_COMMAND_BURST": "1000000"}
        if args.database:
            env["FLASKPUSH_DATABASE"] = args.database
        with common.Gunicorn("wsgi:app", Path(tmp, "flaskpush.log"), env=env, **settings) as fp, \
                common.Gunicorn("echo_app:app", Path(tmp, "echo.log"), pythonpath=common.BENCH, **settings) as echo:
            users = asyncio.run(common.register_users(fp.url, args.users))
            run_id = secrets.token_hex(4)
            frame_pairs = [
                common.command_frames(common.make_subscription(f"https://push.example.com/send/{run_id}-{i}"))
                for i in range(max(args.conns))
            ]
            for c in args.conns:
                cookies = [users[i % len(users)] for i in range(c)]
                rounds = {"echo": [], "flaskpush": []}
                for _ in range(args.rounds):
                    for name, server, is_echo in (("echo", echo, True), ("flaskpush", fp, False)):
                        rounds[name].append(measure(server, cookies, frame_pairs[:c], is_echo, args, generator_cpus))
                for name, parts in rounds.items():
                    result = Result.merge(parts)
                    print(result.line(c, name), flush=True)
                    for sample in result.samples:
                        print(f"    {sample}")
                    errors += result.errors
                print(verdict(c, rounds), flush=True)
            logged = fp.tracebacks() + echo.tracebacks()
            print(f"server tracebacks logged: {logged}")
            for server in (fp, echo):
                if server.tracebacks():
                    print(server.first_traceback())
            errors += logged
    print(f"total errors={errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
