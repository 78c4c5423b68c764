"""``flask push worker``: run the job queue's fan-outs on this host."""
import click
from flask import current_app

from . import push


@push.command("worker")
@click.option("--burst", is_flag=True, help="Stop once the queue is empty instead of waiting for jobs.")
def worker(burst):
    """Send the pushes queued on QUEUE_URL (Redis, with RQ).

    Start one or more on any host that shares the database. Each runs one
    chunk of a fan-out at a time, and the delayed retries when they are due.
    SIGTERM stops it after the chunk it is sending (at most QUEUE_JOB_TIMEOUT
    seconds); a worker killed outright has its chunk sent again by another.
    """
    app = current_app._get_current_object()
    if not app.config["QUEUE_URL"]:
        raise click.ClickException("QUEUE_URL is not set: pushes are sent in-process, no worker needed")
    from ..push import queue  # rq is needed only with a queue configured

    queue.work(app, burst=burst)
