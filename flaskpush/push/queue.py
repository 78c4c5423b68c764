"""The job queue for fan-outs too big for one machine: RQ on Redis.

With ``QUEUE_URL`` set, a fan-out becomes jobs of ``QUEUE_CHUNK_SIZE``
subscription ids each; ``flask push worker`` runs them on any number of
hosts that share the database. A job carries ids, never keys, and reads the
rows when it runs (a row deleted since is skipped). It sends each push once
(``delivery.send_once``); what the retry policy would try again becomes a
delayed job for the scheduler, so no worker sleeps through a Retry-After.

A worker killed mid-job leaves its chunk "started"; once the job's timeout
and ``ABANDON_GRACE`` have passed, another worker's maintenance puts it back
on the queue and the whole chunk runs again: a kill can repeat at most the
pushes of the chunks that were running, never lose one.
"""
import math
from collections import Counter, defaultdict
from datetime import timedelta

from flask import current_app
from redis import Redis
from rq import Queue, Retry, SimpleWorker

from ..models import PushSubscription
from . import delivery

ABANDON_GRACE = 5  # seconds past its timeout before a started job counts as abandoned
RERUNS = 3  # times a chunk whose worker died or raised is run again


def get_queue(app):
    """The app's RQ queue (one Redis connection pool per app and process)."""
    queue = app.extensions.get("flaskpush.queue")
    if queue is None:
        queue = Queue(app.config["QUEUE_NAME"], connection=Redis.from_url(app.config["QUEUE_URL"]))
        app.extensions["flaskpush.queue"] = queue
    return queue


def enqueue(subscription_ids, payload, *, ttl=None, urgency=None, topic=None):
    """Queue ``payload`` for the subscriptions with these ids, in chunks;
    returns the RQ jobs. A payload or option that could never be sent raises
    here (``PayloadTooLarge``, ``ValueError``), before anything is queued."""
    app = current_app._get_current_object()
    delivery.check(app.config, payload, ttl, urgency, topic)
    ids = list(subscription_ids)
    size = app.config["QUEUE_CHUNK_SIZE"]
    options = {"ttl": ttl, "urgency": urgency, "topic": topic}
    chunks = [ids[start:start + size] for start in range(0, len(ids), size)]
    return get_queue(app).enqueue_many(
        [job_data(app, (chunk, payload, options)) for chunk in chunks]
    )


def job_data(app, args):
    """One chunk's job: timed out, and run again if its worker dies."""
    return Queue.prepare_data(
        deliver_chunk, args, timeout=app.config["QUEUE_JOB_TIMEOUT"], retry=Retry(max=RERUNS)
    )


def deliver_chunk(subscription_ids, payload, options, attempts=0, waited=0.0):
    """The job: send once to the rows that still exist, schedule the retries,
    and return how many pushes came to what."""
    rows = PushSubscription.select().where(PushSubscription.id.in_(subscription_ids))
    tried = delivery.Tried(attempts, waited)
    results = delivery.send_once(list(rows), payload, tried=tried, **options)
    schedule_retries(results, payload, options, waited)
    return dict(Counter(result.outcome for result in results))


def schedule_retries(results, payload, options, waited):
    """One delayed job per (attempts, whole seconds to wait): the scheduler
    moves it to the queue when it is due."""
    groups = defaultdict(list)
    for result in results:
        if result.outcome == "retry":
            groups[result.attempts, math.ceil(result.retry_in)].append(result.subscription_id)
    app = current_app._get_current_object()
    queue = get_queue(app)
    for (attempts, delay), ids in groups.items():
        data = job_data(app, (ids, payload, options, attempts, waited + delay))
        queue.enqueue_in(timedelta(seconds=delay), data.func, *data.args,
                         job_timeout=data.timeout, retry=data.retry)


class AppWorker(SimpleWorker):
    """RQ's worker that runs jobs in its own process, each in an app context.

    One process keeps one app, one delivery loop and pooled connections for
    all its jobs; RQ's forking worker would build them again for every job.
    """

    def __init__(self, queues, *, app, **kwargs):
        super().__init__(queues, **kwargs)
        self.app = app

    def execute_job(self, job, queue):
        with self.app.app_context():
            super().execute_job(job, queue)

    def get_heartbeat_ttl(self, job, working_time=0.0):
        """A job of this worker never runs past its timeout (RQ stops it
        there), so a "started" job still running later has lost its worker.
        RQ's own margin is a minute; ours lets a fan-out resume sooner."""
        return int(job.timeout) + ABANDON_GRACE


def work(app, burst=False):
    """Run jobs until stopped (SIGTERM: after the current chunk), or with
    ``burst`` until the queue is empty. Every worker also runs RQ's
    scheduler (one at a time holds its lock), which releases the delayed
    retries, and looks for abandoned chunks every ``QUEUE_MAINTENANCE_INTERVAL``."""
    queue = get_queue(app)
    interval = app.config["QUEUE_MAINTENANCE_INTERVAL"]
    worker = AppWorker(
        [queue], app=app, connection=queue.connection,
        maintenance_interval=interval, worker_ttl=interval + 15,  # it wakes every ttl - 15 s
    )
    return worker.work(burst=burst, with_scheduler=True)
