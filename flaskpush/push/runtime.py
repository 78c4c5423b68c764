"""The per-process machinery delivery runs on: one asyncio loop in a daemon
thread (for the HTTP requests) and a few worker threads (for the database
work of ``send_to_user``).

Both are created on first use by the process that uses them and recreated
after a fork, so a gunicorn master that imported or even used them before
forking hands its workers nothing broken: threads do not survive ``fork``.
"""
import asyncio
import atexit
import os
import threading
from concurrent.futures import ThreadPoolExecutor

BACKGROUND_WORKERS = 4

_lock = threading.Lock()
_state = {"pid": None}


def _new_lock_in_child():
    """A fork copies the lock, perhaps held by a thread that did not come along."""
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def _current():
    """This process's loop, executor and per-process cache, made on first use."""
    if _state["pid"] != os.getpid():
        with _lock:
            if _state["pid"] != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="flaskpush-push", daemon=True).start()
                _state.update(
                    loop=loop,
                    executor=ThreadPoolExecutor(BACKGROUND_WORKERS, thread_name_prefix="flaskpush-send"),
                    cache={},
                    pid=os.getpid(),
                )
    return _state


def loop():
    """The running event loop of this process's delivery thread."""
    return _current()["loop"]


def executor():
    """Threads for work the request thread must not wait for."""
    return _current()["executor"]


def cached(key, make):
    """A per-process object made by ``make()`` once per ``key`` (e.g. an HTTP
    session for one set of settings), forgotten after a fork."""
    cache = _current()["cache"]
    with _lock:
        if key not in cache:
            cache[key] = make()
        return cache[key]


@atexit.register
def _close_at_exit():
    """Close the cached objects' connections (their ``aclose``) on the loop
    before the interpreter tears it down, so nothing is left half-open."""
    if _state["pid"] != os.getpid():
        return
    objects = list(_state["cache"].values())
    if objects:
        asyncio.run_coroutine_threadsafe(_close_all(objects), _state["loop"]).result(5)


async def _close_all(objects):
    await asyncio.gather(*(obj.aclose() for obj in objects))
