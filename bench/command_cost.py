"""Where one socket command's CPU goes, measured in one process, no sockets.

``ws_load.py`` compares whole servers; this takes the command path apart.
Each stage runs the push_subscribe / push_unsubscribe pairs that
``ws_load.py`` sends, on SQLite, in batches on the database thread as the
server runs them (``group_commit``), and prints CPU microseconds per command
and the ratio to the baseline measured in the same run: reading the frame
and writing the reply, the JSON work any JSON-over-WebSocket server does.

The sum of the stages after the baseline is what flaskpush adds to the echo
app's work, before any thread handoff: set it against the echo app's CPU
per command in ``ws_load.py``'s output to see the most the ratio could be.

    python bench/command_cost.py [--commands 4000] [--batch 100] [--repeat 5]
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import common

from flaskpush import create_app, db
from flaskpush.auth import create_user
from flaskpush.commands import EXTENSION, CommandError, execute, parse_frame
from flaskpush.group_commit import database_thread
from flaskpush.models import LoginSession
from flaskpush.push.validation import validate_subscription
from flaskpush.ratelimit import TokenBucket
from flaskpush.socket import Client


REPLY = {"cmd": "push_subscribed", "success": True}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=4000, help="commands per stage and repeat (even)")
    parser.add_argument("--batch", type=int, default=100, help="commands per database-thread batch")
    parser.add_argument("--repeat", type=int, default=5, help="runs per stage; the fastest counts")
    parser.add_argument("--sockets", type=int, default=200, help="distinct endpoints, as ws_load's sockets")
    return parser.parse_args()


def cpu_per_item(run, items, repeat):
    """Fastest of ``repeat`` runs, in CPU microseconds per item: process CPU,
    so the database thread's share counts."""
    run(items)  # warm caches and the pool
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run(items)
        best = min(best, time.process_time() - start)
    return best / len(items) * 1e6


def in_batches(size, each):
    """Run ``each(item)`` for every item, ``size`` to a database-thread batch."""
    def run(items):
        for start in range(0, len(items), size):
            chunk = items[start:start + size]
            database_thread.call(lambda chunk=chunk: [each(item) for item in chunk])
    return run


def frames(sockets, count):
    """ws_load's traffic: each socket subscribes, then unsubscribes, in turn."""
    pairs = [common.command_frames(common.make_subscription(f"https://push.example.com/send/{n}"))
             for n in range(sockets)]
    return [pairs[i // 2 % sockets][i % 2][0] for i in range(count)]


def stages(app, client, batch, failures):
    """(name, runner, what it measures) in the order a command meets them."""
    table = app.extensions[EXTENSION]

    def frame(text):
        parse_frame(text)
        json.dumps(REPLY)

    def validate(text):
        message = parse_frame(text)
        if message["cmd"] == "push_subscribe":
            validate_subscription(message["subscription"])

    def command(text):
        # dispatch() itself would hand the command to the database thread
        # and return its connection to the pool, which cannot happen from
        # inside the batch; this is dispatch's path for a known command.
        message = parse_frame(text)
        client.allow()
        try:
            json.dumps(execute(table[message["cmd"]], message, client))
        except CommandError as exc:  # the error reply dispatch would send
            failures.append(exc.reason)

    return [
        ("frame", lambda items: [frame(f) for f in items], "parse the frame, write a reply (the baseline)"),
        ("session", in_batches(batch, lambda _: client.authenticate()), "the session check alone"),
        ("validate", lambda items: [validate(f) for f in items], "frame + subscription validation (P-256, endpoint)"),
        ("command", in_batches(batch, command), "the whole command, batched on the database thread"),
    ]


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FLASKPUSH_INSTANCE_PATH"] = tmp
        app = create_app({"SECRET_KEY": "bench", "DATABASE": f"sqlite:///{Path(tmp, 'bench.sqlite3')}"})
        with app.app_context():
            db.create_tables()
            user = create_user("bench", common.PASSWORD)
            session = LoginSession.start(user)
            db.close_db()
            client = Client(session_id=session.id, user_agent="bench", bucket=TokenBucket(1e9, 1e9))
            items = frames(args.sockets, args.commands)
            print(f"# Python {sys.version.split()[0]}, SQLite, {args.commands} commands per stage, "
                  f"batches of {args.batch}, fastest of {args.repeat}")
            failures = []
            figures = {name: (cpu_per_item(run, items, args.repeat), what)
                       for name, run, what in stages(app, client, args.batch, failures)}
    base = figures["frame"][0]
    for name, (us, what) in figures.items():
        print(f"{name:<9} {us:8.1f} us/command  x{us / base:5.1f} of frame   {what}")
    added = figures["command"][0] - base
    print(f"flaskpush adds {added:.1f} us/command of CPU to the frame work ({added / base:.1f}x the baseline)")
    print(f"total errors={len(failures)}", *failures[:3])


if __name__ == "__main__":
    main()
