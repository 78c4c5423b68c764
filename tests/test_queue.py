"""The job queue: fan-outs sent by real ``flask push worker`` processes
through the local Redis, to the local push service, which counts what it
verified and decrypted. Each test has its own RQ queue, emptied at the end."""
import collections
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FinishedJobRegistry, StartedJobRegistry

from flaskpush.auth import create_user
from flaskpush.models import PushSubscription
from flaskpush.push import queue as push_queue
from flaskpush.push.delivery import build_payload, send_to_user

REDIS_URL = "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parent.parent
WORKER_SETTINGS = {
    "ALLOW_INSECURE_ENDPOINTS": True, "PUSH_BACKOFF": 0.05, "PUSH_READ_TIMEOUT": 2,
    "QUEUE_JOB_TIMEOUT": 5, "QUEUE_MAINTENANCE_INTERVAL": 1,
}
pytestmark = pytest.mark.app_config(**WORKER_SETTINGS)


@pytest.fixture
def queue_name():
    """A queue of this test's own; its jobs and keys are deleted afterwards."""
    name = f"flaskpush-test-{secrets.token_hex(4)}"
    yield name
    redis = Redis.from_url(REDIS_URL)
    Queue(name, connection=redis).delete(delete_jobs=True)
    for key in redis.scan_iter(f"rq:*{name}*"):
        redis.delete(key)
    for job_id in redis.smembers(f"flaskpush-test-jobs:{name}"):
        for key in redis.scan_iter(f"rq:*{job_id.decode()}*"):
            redis.delete(key)
    redis.delete(f"flaskpush-test-jobs:{name}")


@pytest.fixture
def app_config(app_config, queue_name):
    return {**app_config, "QUEUE_URL": REDIS_URL, "QUEUE_NAME": queue_name}


@pytest.fixture
def user(app):
    with app.app_context():
        yield create_user("alice", "correct horse")


@pytest.fixture
def workers(app, app_config, tmp_path, queue_name):
    """``start(**settings)`` runs ``flask push worker`` in its own process
    group (so a kill takes its scheduler too) with the test's database,
    instance folder and queue; all are stopped at the end."""
    procs = []

    def start(**settings):
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKPUSH_")}
        config = {**WORKER_SETTINGS, **settings, "DATABASE": app_config["DATABASE"],
                  "QUEUE_URL": REDIS_URL, "QUEUE_NAME": queue_name}
        env.update({f"FLASKPUSH_{k}": json.dumps(v) for k, v in config.items()})
        env["FLASKPUSH_INSTANCE_PATH"] = app.instance_path
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "push", "worker"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def subscribe(user, service, count=1):
    """Store ``count`` subscriptions the push service issued."""
    rows = []
    for _ in range(count):
        info = service.new_subscription()
        rows.append(PushSubscription.create(user=user, endpoint=info["endpoint"],
                                            p256dh=info["keys"]["p256dh"], auth=info["keys"]["auth"]))
    return rows


def remember(queue_name, jobs):
    """Note job ids for the cleanup (RQ's job keys do not carry the queue name)."""
    Redis.from_url(REDIS_URL).sadd(f"flaskpush-test-jobs:{queue_name}", *[job.id for job in jobs])
    return jobs


def finished_jobs(app, count, timeout=60):
    """Wait until ``count`` jobs of the queue finished; returns them, oldest first."""
    registry = FinishedJobRegistry(queue=push_queue.get_queue(app))
    deadline = time.monotonic() + timeout
    while len(registry.get_job_ids()) < count:
        assert time.monotonic() < deadline, f"{len(registry.get_job_ids())} of {count} jobs finished"
        time.sleep(0.1)
    jobs = Job.fetch_many(registry.get_job_ids(), connection=registry.connection)
    remember(registry.name, jobs)
    return sorted(jobs, key=lambda job: job.ended_at)


def per_endpoint(service):
    return collections.Counter(message.endpoint for message in service.messages())


@pytest.mark.app_config(QUEUE_CHUNK_SIZE=25)
def test_a_fan_out_is_chunked_and_delivered_once_each(app, user, push_service, workers, queue_name):
    rows = subscribe(user, push_service, 60)
    jobs = remember(queue_name, send_to_user(user, "Hi", "from the queue", url="/q").result(0))
    assert [len(job.args[0]) for job in jobs] == [25, 25, 10]
    assert push_service.requests == []  # nothing is sent until a worker runs
    workers(), workers()
    push_service.wait_for(60, timeout=60)
    assert {job.return_value()["sent"] for job in finished_jobs(app, 3)} == {25, 10}
    assert per_endpoint(push_service) == {row.endpoint: 1 for row in rows}
    assert {m.json()["body"] for m in push_service.messages()} == {"from the queue"}
    assert PushSubscription.select().where(PushSubscription.last_success_at.is_null()).count() == 0


def test_a_job_carries_ids_and_skips_rows_deleted_since(app, user, push_service, workers, queue_name):
    kept, deleted = subscribe(user, push_service, 2)
    [job] = remember(queue_name, push_queue.enqueue([kept.id, deleted.id], build_payload("t", "b")))
    assert job.args[0] == [kept.id, deleted.id] and "p256dh" not in json.dumps(job.args)
    deleted.delete_instance()
    workers()
    assert finished_jobs(app, 1)[0].return_value() == {"sent": 1}
    assert list(per_endpoint(push_service)) == [kept.endpoint]


def test_retry_after_becomes_a_delayed_job(app, user, push_service, workers, queue_name):
    [row] = subscribe(user, push_service)
    push_service.script(row.endpoint, (429, {"Retry-After": "2"}))
    remember(queue_name, push_queue.enqueue([row.id], build_payload("t", "b")))
    workers()
    [message] = push_service.wait_for(1, timeout=30)
    first, retried = finished_jobs(app, 2)
    assert first.return_value() == {"retry": 1} and retried.return_value() == {"sent": 1}
    assert retried.args[3:] == (1, 2)  # one attempt made, two seconds waited
    refused, accepted = push_service.requests
    assert refused.status == 429 and accepted.received_at - refused.received_at >= 1.9
    assert first.ended_at.timestamp() < refused.received_at + 1  # the worker did not sleep it off
    assert PushSubscription.get_by_id(row.id).last_success_at is not None


def test_gone_subscriptions_are_deleted_by_the_worker(app, user, push_service, workers, queue_name):
    gone, kept = subscribe(user, push_service, 2)
    push_service.remove(gone.endpoint)
    remember(queue_name, push_queue.enqueue([gone.id, kept.id], build_payload("t", "b")))
    workers()
    assert finished_jobs(app, 1)[0].return_value() == {"gone": 1, "sent": 1}
    assert [row.id for row in PushSubscription.select()] == [kept.id]


def slow_fan_out(user, service, queue_name, count, seconds):
    """Subscriptions that each answer after ``seconds``, queued as one fan-out."""
    rows = subscribe(user, service, count)
    for row in rows:
        service.script(row.endpoint, ("slow", seconds))
    remember(queue_name, push_queue.enqueue([row.id for row in rows], build_payload("t", "b")))
    return rows


@pytest.mark.app_config(QUEUE_CHUNK_SIZE=40)
def test_a_killed_worker_s_chunk_is_finished_by_another(app, user, push_service, workers, queue_name):
    rows = slow_fan_out(user, push_service, queue_name, 160, 0.5)
    first = workers(PUSH_CONCURRENCY=10)  # 40 at 10 a time, 0.5 s each: 2 s a chunk
    push_service.wait_for(15, timeout=30)
    os.killpg(first.pid, signal.SIGKILL)  # mid-chunk, scheduler and all
    first.wait(10)
    workers(PUSH_CONCURRENCY=10)
    push_service.wait_for(160, timeout=90)
    finished_jobs(app, 4)  # the abandoned chunk too, once its timeout had passed
    counts = per_endpoint(push_service)
    assert set(counts) == {row.endpoint for row in rows}  # no notification lost
    duplicates = sum(n - 1 for n in counts.values())
    print(f"duplicates after one SIGKILL: {duplicates} (chunk size 40)")
    assert duplicates <= 40  # only the chunk that was running is sent again
    assert PushSubscription.select().count() == 160  # no row lost or duplicated
    assert StartedJobRegistry(queue=push_queue.get_queue(app)).get_job_ids() == []


@pytest.mark.app_config(QUEUE_CHUNK_SIZE=40)
def test_sigterm_finishes_the_running_chunk_then_stops(app, user, push_service, workers, queue_name):
    slow_fan_out(user, push_service, queue_name, 120, 0.5)
    worker = workers(PUSH_CONCURRENCY=10)
    push_service.wait_for(5, timeout=30)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(WORKER_SETTINGS["QUEUE_JOB_TIMEOUT"] + 10) == 0  # bound: the job timeout
    [finished] = finished_jobs(app, 1)
    assert finished.return_value() == {"sent": 40}  # the chunk in flight, all of it
    assert len(push_service.messages()) == 40
    assert push_queue.get_queue(app).count == 2  # the rest waits for another worker
