"""Fan-out benchmark: flaskpush's ``send`` against the loop most projects copy
(``pywebpush.webpush()`` once per subscription, key file path) and against
encryption alone (ephemeral key + ``http_ece.encrypt``, no HTTP), and the
job queue path (RQ on the local Redis) with 1 and 2 ``flask push worker``
processes, as ratios to ``send`` in the same run.

The push service (tests/pushservice.py) runs in another process pinned to
core 1, the sender on core 0. Only messages the service verified (VAPID) and
decrypted are counted. Run from the repository root::

    python bench/fanout.py [--sizes 1000 10000] [--naive-sample N] [--queue-workers 1 2]

The workers are pinned to the sender's core, so the queue path gets the same
CPU as ``send``: with 2 workers the figure shows the queue's overhead, not
how it scales across machines.
"""
import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from pywebpush import webpush

ROOT = Path(__file__).resolve().parents[1]
SERVICE_CORE, SENDER_CORE = 1, 0
SUBJECT = "mailto:bench@example.com"
WARMUP = 64
REDIS_URL = "redis://127.0.0.1:6379/0"


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Service:
    """The push service as a separate process, pinned to its own core."""

    def __init__(self, count, workdir):
        out = os.path.join(workdir, f"subscriptions-{count}.json")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "pushservice.py"), "--subscriptions", str(count),
             "--out", out, "--watch-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {SERVICE_CORE}),
        )
        self.stats_url = json.loads(self.process.stdout.readline())["stats_url"]
        with open(out) as file:
            self.subscriptions = json.load(file)["subscriptions"]

    def accepted(self):
        with urllib.request.urlopen(self.stats_url) as response:
            return json.load(response)["accepted"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(10)


def measure(service, subscriptions, run):
    """(verified messages, msgs/s, CPU seconds per 1,000 messages) for one way of sending."""
    before = service.accepted() if service else 0
    wall, cpu = time.perf_counter(), cpu_seconds()
    done = run(subscriptions)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    count = service.accepted() - before if service else done
    return count, count / wall, cpu / count * 1000


def rows_by_endpoint(app, user_name):
    """The user's subscription rows, loaded before the clock starts, as the
    other senders get their subscriptions in memory."""
    from flaskpush.models import PushSubscription, User

    with app.app_context():
        query = PushSubscription.select().join(User).where(User.name == user_name)
        return {row.endpoint: row for row in query}


def flaskpush_sender(app, payload, rows):
    """``send`` to the subscriptions' rows."""
    from flaskpush.push.delivery import send

    def run(subscriptions):
        with app.app_context():
            results = send([rows[s["endpoint"]] for s in subscriptions], payload)
        failed = [r for r in results if r.outcome != "sent"]
        assert not failed, failed[:3]
        return len(results)

    return run


class QueueWorkers:
    """``flask push worker`` processes on the app's database and a queue of
    the run's own; ``run`` queues a fan-out and waits until the service
    verified every push."""

    def __init__(self, app, service, workers):
        self.app, self.service, self.count = app, service, workers
        self.processes, self.jobs = [], []

    def __enter__(self):
        config = {key: self.app.config[key] for key in
                  ("DATABASE", "ALLOW_INSECURE_ENDPOINTS", "VAPID_SUBJECT", "QUEUE_URL", "QUEUE_NAME")}
        env = {**os.environ, **{f"FLASKPUSH_{k}": json.dumps(v) for k, v in config.items()},
               "FLASKPUSH_INSTANCE_PATH": self.app.instance_path}
        self.processes = [
            subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "push", "worker"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=lambda: os.sched_setaffinity(0, {SENDER_CORE}))
            for _ in range(self.count)
        ]
        return self

    def __exit__(self, *exc):
        from flaskpush.push import queue

        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)
        for job in self.jobs:  # leave nothing of the run in Redis
            job.delete()
        queue.get_queue(self.app).delete()

    def sender(self, rows, payload):
        from flaskpush.push import queue

        def run(subscriptions):
            before = self.service.accepted()
            with self.app.app_context():
                ids = [rows[s["endpoint"]].id for s in subscriptions]
                self.jobs.extend(queue.enqueue(ids, payload))
            deadline = time.monotonic() + 300
            while self.service.accepted() < before + len(subscriptions):
                assert time.monotonic() < deadline, "the queue workers did not deliver every push"
                time.sleep(0.05)
            return len(subscriptions)

        return run


def naive_sender(key_path, data):
    def run(subscriptions):
        for subscription in subscriptions:
            webpush(subscription, data, vapid_private_key=key_path,
                    vapid_claims={"sub": SUBJECT}, ttl=86400, timeout=10)
        return len(subscriptions)

    return run


def encrypt_only(data):
    from flaskpush.push.validation import decode_b64url

    def run(subscriptions):
        for subscription in subscriptions:
            keys = subscription["keys"]
            http_ece.encrypt(data, private_key=ec.generate_private_key(ec.SECP256R1()),
                             dh=decode_b64url(keys["p256dh"]), auth_secret=decode_b64url(keys["auth"]),
                             version="aes128gcm")
        return len(subscriptions)

    return run


def make_app(workdir):
    """A flaskpush app on a fresh SQLite database, allowed to send to 127.0.0.1."""
    os.environ["FLASKPUSH_INSTANCE_PATH"] = os.path.join(workdir, "instance")
    from flaskpush import create_app

    return create_app({
        "DATABASE": f"sqlite:///{workdir}/bench.sqlite3",
        "ALLOW_INSECURE_ENDPOINTS": True,
        "VAPID_SUBJECT": SUBJECT,
        "QUEUE_URL": REDIS_URL,
        "QUEUE_NAME": f"flaskpush-bench-{secrets.token_hex(4)}",
    })


def store(app, subscriptions):
    """Save the subscriptions for a new user; returns the user's name."""
    from flaskpush.auth import create_user
    from flaskpush.db import database
    from flaskpush.models import PushSubscription

    with app.app_context():
        name = f"bench{len(subscriptions)}"
        user = create_user(name, "bench password")
        rows = [{"user": user.id, "endpoint": s["endpoint"], "p256dh": s["keys"]["p256dh"],
                 "auth": s["keys"]["auth"]} for s in subscriptions]
        with database.atomic():
            for start in range(0, len(rows), 500):
                PushSubscription.insert_many(rows[start:start + 500]).execute()
    return name


def report(count, figures, naive_count):
    flask_rate, flask_cpu = figures["flaskpush send"][1:]
    naive_rate, enc_cpu = figures["naive webpush()"][1], figures["encryption only"][2]
    print(f"\nN = {count:,}" + (f" (naive loop on a sample of {naive_count:,})" if naive_count < count else ""))
    print(f"{'method':<18}{'messages':>10}{'msgs/s':>10}{'CPU s/1000':>12}")
    for name, (done, rate, cpu) in figures.items():
        cpu = f"{cpu:>12.3f}" if not name.startswith("queue") else f"{'(workers)':>12}"
        print(f"{name:<18}{done:>10,}{rate:>10,.0f}{cpu}")
    print(f"flaskpush rate / naive rate:           {flask_rate / naive_rate:5.1f}x  (target >= 6x)")
    print(f"flaskpush CPU/msg / encryption CPU/msg: {flask_cpu / enc_cpu:5.2f}x  (target <= 3x)")
    for name, (_, rate, _) in figures.items():
        if name.startswith("queue"):
            print(f"{name} rate / send rate: {rate / flask_rate:5.2f}x")


def bench(count, naive_sample, queue_workers, workdir, app):
    service = Service(count + WARMUP, workdir)
    try:
        warmup, subscriptions = service.subscriptions[:WARMUP], service.subscriptions[WARMUP:]
        user_name = store(app, service.subscriptions)
        from flaskpush.push.delivery import build_payload
        from flaskpush.push.payload import encode

        payload = build_payload("New message from Alice", "x" * 120, url="/inbox/12345", tag="inbox")
        data = encode(payload)
        naive_count = min(count, naive_sample)
        rows = rows_by_endpoint(app, user_name)
        senders = {
            "flaskpush send": (service, subscriptions, flaskpush_sender(app, payload, rows)),
            "naive webpush()": (service, subscriptions[:naive_count],
                                naive_sender(app.config["VAPID_PRIVATE_KEY"], data)),
            "encryption only": (None, subscriptions, encrypt_only(data)),
        }
        figures = {}
        for name, (svc, subs, run) in senders.items():
            run(warmup)
            figures[name] = measure(svc, subs, run)
        for workers in queue_workers:
            with QueueWorkers(app, service, workers) as queue:
                run = queue.sender(rows, payload)
                run(warmup)
                figures[f"queue, {workers} worker{'s' * (workers > 1)}"] = measure(service, subscriptions, run)
        for name, (done, _, _) in figures.items():
            assert name == "naive webpush()" or done == count, f"{name}: not every push was verified"
        report(count, figures, naive_count)
    finally:
        service.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--naive-sample", type=int, default=10000,
                        help="send at most this many with the naive loop")
    parser.add_argument("--queue-workers", type=int, nargs="*", default=[1, 2],
                        help="worker processes for each queue run (none: skip the queue)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {SENDER_CORE})
    with tempfile.TemporaryDirectory() as workdir:
        app = make_app(workdir)
        for count in args.sizes:
            bench(count, args.naive_sample, args.queue_workers, workdir, app)


if __name__ == "__main__":
    main()
