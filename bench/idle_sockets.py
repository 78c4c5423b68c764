"""How many authenticated idle sockets one worker holds, and what each costs.

One gunicorn worker (gthread, then gevent) on a fresh SQLite instance; N
sockets open with signed-in users' cookies (several sockets per user, like
browser tabs) and stay idle past a ping interval and a presence heartbeat.
Memory per socket is the worker's resident-memory growth divided by N,
measured against the same worker after a warm-up. A sample of sockets
proves they are still authenticated (push_get_vapid and push_subscribe)
before and after the hold, and every socket must still have its presence row.

    python bench/idle_sockets.py                 # 1,000 gthread, 10,000 gevent
    python bench/idle_sockets.py --gthread 200 --gevent 2000 --hold 5
    python bench/idle_sockets.py --gevent 0 --server-env MALLOC_ARENA_MAX=2
"""
import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import common
from flaskpush.models import SocketPresence

TARGETS = {"gthread": 1000, "gevent": 10000}
TARGET_KIB = 100


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gthread", type=int, default=TARGETS["gthread"], help="sockets for the gthread worker (0: skip)")
    parser.add_argument("--gevent", type=int, default=TARGETS["gevent"], help="sockets for the gevent worker (0: skip)")
    parser.add_argument("--users", type=int, default=20, help="users signed up; sockets share them like tabs")
    parser.add_argument("--hold", type=float, default=35, help="idle seconds (default: past one ping and one heartbeat)")
    parser.add_argument("--sample", type=int, default=20, help="sockets checked for authentication")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and clients to separate CPUs")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for the server, e.g. MALLOC_ARENA_MAX=2 (repeatable)")
    args = parser.parse_args()
    args.server_env = dict(item.split("=", 1) for item in args.server_env)
    return args


class Held:
    """One idle socket; its reader answers pings and queues the replies."""

    def __init__(self, ws):
        self.ws = ws
        self.replies = asyncio.Queue()
        self.reader = asyncio.create_task(self.read())

    async def read(self):
        async for message in self.ws:
            self.replies.put_nowait(message.data)

    @property
    def open(self):
        return not self.reader.done()

    async def call(self, cmd, **fields):
        await self.ws.send_str(json.dumps({"cmd": cmd, **fields}))
        return json.loads(await asyncio.wait_for(self.replies.get(), 60))


async def still_authenticated(held, endpoint):
    """The socket reads the key and stores (then drops) a subscription."""
    vapid = await held.call("push_get_vapid")
    saved = await held.call("push_subscribe", subscription=common.make_subscription(endpoint))
    await held.call("push_unsubscribe", endpoint=endpoint)
    return vapid.get("cmd") == "push_vapid" and saved.get("cmd") == "push_subscribed"


async def check_sample(sockets, count, tag):
    step = max(1, len(sockets) // count)
    sample = [s for s in sockets[::step][:count] if s.open]
    endpoint = f"https://push.example.com/send/idle-{tag}-"
    answers = await asyncio.gather(
        *(still_authenticated(s, f"{endpoint}{i}") for i, s in enumerate(sample)), return_exceptions=True
    )
    return sum(answer is True for answer in answers)


def presence_rows(database_file):
    with sqlite3.connect(database_file) as db:
        return db.execute(f'SELECT count(*) FROM "{SocketPresence._meta.table_name}"').fetchone()[0]


async def hold_sockets(server, cookies, count, args, database_file):
    """Open ``count`` sockets, hold them idle, and report what held up."""
    worker = server.worker_pids()[0]
    async with common.http_session() as http:
        warm = [Held(await common.open_socket(http, server.url, c)) for c in cookies]
        await check_sample(warm, len(warm), "warm")
        await asyncio.gather(*(h.ws.close() for h in warm))
        await asyncio.sleep(1)
        before = common.rss_kib(worker)

        gate = asyncio.Semaphore(200)

        async def connect(i):
            async with gate:
                return Held(await common.open_socket(http, server.url, cookies[i % len(cookies)]))

        started = time.monotonic()
        sockets = [s for s in await asyncio.gather(*(connect(i) for i in range(count)), return_exceptions=True)
                   if isinstance(s, Held)]
        opened_in = time.monotonic() - started
        first = await check_sample(sockets, args.sample, "first")
        await asyncio.sleep(args.hold)
        last = await check_sample(sockets, args.sample, "last")
        after = common.rss_kib(worker)
        still_open = sum(s.open for s in sockets)
        rows = presence_rows(database_file)
        await asyncio.gather(*(s.ws.close() for s in sockets), return_exceptions=True)
    return {
        "opened": len(sockets), "open": still_open, "opened_in": opened_in, "rows": rows,
        "first": first, "last": last, "per_socket": (after - before) / count, "rss": after,
    }


def run(kind, count, args, server_cpus):
    """One worker of ``kind`` holding ``count`` idle sockets; prints its figures."""
    settings = {"worker_class": kind, "connections": count + 64, "cpus": server_cpus}
    if kind == "gthread":
        settings["threads"] = count + 16
    with tempfile.TemporaryDirectory(prefix="flaskpush-idle-") as tmp:
        instance = Path(tmp, "instance")
        with common.Gunicorn("wsgi:app", Path(tmp, "server.log"), env={**args.server_env, "FLASKPUSH_INSTANCE_PATH": str(instance)},
                             **settings) as server:
            cookies = asyncio.run(common.register_users(server.url, args.users))
            figures = asyncio.run(hold_sockets(server, cookies, count, args, instance / "flaskpush.sqlite3"))
            tracebacks = server.tracebacks()
    sample = min(args.sample, count)
    ok = (figures["open"] == count and figures["rows"] == count and figures["first"] == sample
          and figures["last"] == sample and tracebacks == 0)
    print(f"{kind:<8} sockets held={figures['open']}/{count} after {args.hold:g} s idle"
          f" (opened in {figures['opened_in']:.1f} s), presence rows={figures['rows']},"
          f" authenticated sample={figures['first']}/{sample} then {figures['last']}/{sample},"
          f" server tracebacks={tracebacks}")
    verdict = "met" if ok and count >= TARGETS[kind] and figures["per_socket"] < TARGET_KIB else "MISSED"
    print(f"{kind:<8} per socket={figures['per_socket']:.1f} KiB (worker RSS {figures['rss'] / 1024:.0f} MiB)"
          f"  target ({TARGETS[kind]} sockets, < {TARGET_KIB} KiB each): {verdict}", flush=True)
    return ok


def main():
    args = parse_args()
    server_cpus, client_cpus = common.cpu_split(not args.no_pin)
    print(common.machine(server_cpus, client_cpus))
    extra = "".join(f", {name}={value}" for name, value in args.server_env.items())
    print(f"# one gunicorn worker, SQLite, {args.users} users, idle {args.hold:g} s{extra}")
    common.pin_to(client_cpus)
    results = [run(kind, getattr(args, kind), args, server_cpus) for kind in TARGETS if getattr(args, kind)]
    errors = results.count(False)
    print(f"total errors={errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
