"""Files that first start creates in the instance folder, and nothing else.

Several gunicorn workers may start at once on a fresh instance folder; each
file is therefore written under a temporary name and hard-linked into place,
which fails for every worker but the first, and the losers read the winner's
file. No worker ever sees a half-written key, and there is only ever one.
"""
import os
import secrets

from py_vapid import Vapid


def create_once(path, make_bytes):
    """Return the contents of ``path``, creating it with ``make_bytes()`` if absent."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(make_bytes())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    with open(path, "rb") as f:
        return f.read()


def new_vapid_pem():
    """A fresh P-256 private key in PEM, the format ``FLASKPUSH_VAPID_PRIVATE_KEY`` names."""
    vapid = Vapid()
    vapid.generate_keys()
    return vapid.private_pem()


def init_app(app):
    """Settle the secret key and the VAPID key path, creating defaults once.

    A ``VAPID_PRIVATE_KEY`` the operator configured is never generated: a
    missing file there is a mistake to report, not a reason to mint a key
    that would orphan every existing subscription.
    """
    if not app.config.get("SECRET_KEY"):
        path = os.path.join(app.instance_path, "secret_key")
        app.config["SECRET_KEY"] = create_once(path, lambda: secrets.token_hex(32).encode()).decode().strip()
    if not app.config.get("VAPID_PRIVATE_KEY"):
        path = os.path.join(app.instance_path, "vapid_private.pem")
        create_once(path, new_vapid_pem)
        app.config["VAPID_PRIVATE_KEY"] = path
