"""First start: the instance folder, its secrets and database, made once."""
import multiprocessing
import os
import stat

from flaskpush import create_app
from flaskpush.models import PushSubscription, User
from flaskpush.vapid import get_vapid, public_key_b64


def public_key_of_fresh_start(instance, queue):
    os.environ["FLASKPUSH_INSTANCE_PATH"] = instance
    app = create_app()
    with app.app_context():
        queue.put((public_key_b64(get_vapid()), app.config["SECRET_KEY"]))


def test_first_start_creates_everything(instance_path):
    app = create_app()
    files = {f for f in os.listdir(instance_path) if not f.endswith(("-wal", "-shm"))}
    assert files == {"flaskpush.sqlite3", "secret_key", "vapid_private.pem"}
    for name in ("secret_key", "vapid_private.pem"):
        assert stat.S_IMODE(os.stat(instance_path / name).st_mode) == 0o600
    assert app.config["DATABASE"] == f"sqlite:///{instance_path}/flaskpush.sqlite3"
    with app.app_context():
        assert User.table_exists() and PushSubscription.table_exists()
        key = public_key_b64(get_vapid())
    again = create_app()
    with again.app_context():
        assert public_key_b64(get_vapid(again)) == key
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_concurrent_first_starts_agree_on_one_key(tmp_path):
    """Six workers starting at once on an empty instance folder."""
    instance = str(tmp_path / "instance")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=public_key_of_fresh_start, args=(instance, queue)) for _ in range(6)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    assert len(set(results)) == 1
    assert not [f for f in os.listdir(instance) if f.endswith(".tmp")]


def test_environment_overrides_instance_config(instance_path, monkeypatch):
    instance_path.mkdir(parents=True)
    (instance_path / "config.py").write_text("OPEN_REGISTRATION = False\nVAPID_SUBJECT = 'mailto:a@example.com'\n")
    monkeypatch.setenv("FLASKPUSH_VAPID_SUBJECT", '"mailto:ops@example.com"')
    monkeypatch.setenv("FLASKPUSH_ALLOWED_ORIGINS", '["https://app.example"]')
    app = create_app()
    assert app.config["OPEN_REGISTRATION"] is False
    assert app.config["VAPID_SUBJECT"] == "mailto:ops@example.com"
    assert app.config["ALLOWED_ORIGINS"] == ["https://app.example"]


def test_configured_key_is_never_generated(instance_path, monkeypatch, tmp_path):
    monkeypatch.setenv("FLASKPUSH_VAPID_PRIVATE_KEY", str(tmp_path / "missing.pem"))
    create_app()
    assert not (tmp_path / "missing.pem").exists()
    assert not (instance_path / "vapid_private.pem").exists()
