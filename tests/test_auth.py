"""Sign-up, sign-in and sign-out over HTTP, as forms and as JSON."""
import re

import pytest

from flaskpush.auth import create_user
from flaskpush.models import LoginSession, User


def form_token(client):
    page = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_register_json_signs_in(client):
    r = client.post("/register", json={"username": "alice", "password": "correct horse"})
    assert r.status_code == 200 and r.json == {"ok": True, "user": "alice"}
    assert "Signed in as" in client.get("/").get_data(as_text=True)
    assert User.get(User.name == "alice").password_hash.startswith(("scrypt:", "pbkdf2:"))


@pytest.mark.parametrize(
    "body, status",
    [
        ({"username": "alice", "password": "short"}, 400),
        ({"username": "alice", "password": ""}, 400),
        ({"username": "", "password": "correct horse"}, 400),
        ({"username": "bad name!", "password": "correct horse"}, 400),
    ],
)
def test_register_rejects_bad_input(client, body, status):
    r = client.post("/register", json=body)
    assert r.status_code == status and r.json["ok"] is False and r.json["error"]
    assert User.select().count() == 0


def test_register_taken_name(client):
    client.post("/register", json={"username": "alice", "password": "correct horse"})
    r = client.application.test_client().post("/register", json={"username": "alice", "password": "other password"})
    assert r.status_code == 409 and User.select().count() == 1


@pytest.mark.app_config(OPEN_REGISTRATION=False)
def test_closed_registration(client):
    r = client.post("/register", json={"username": "alice", "password": "correct horse"})
    assert r.status_code == 403 and User.select().count() == 0


def test_login_json(app, client):
    with app.app_context():
        create_user("alice", "correct horse")
    bad = client.post("/login", json={"username": "alice", "password": "wrong horse"})
    unknown = client.post("/login", json={"username": "nobody", "password": "wrong horse"})
    assert bad.status_code == unknown.status_code == 401
    assert bad.json == unknown.json == {"ok": False, "error": "Invalid username or password"}
    ok = client.post("/login", json={"username": "alice", "password": "correct horse"})
    assert ok.status_code == 200 and ok.json == {"ok": True, "user": "alice"}


def test_session_cookie_flags(client):
    r = client.post("/register", json={"username": "alice", "password": "correct horse"})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_inactive_user_cannot_sign_in(app, client):
    with app.app_context():
        user = create_user("alice", "correct horse")
        User.update(active=False).where(User.id == user.id).execute()
    r = client.post("/login", json={"username": "alice", "password": "correct horse"})
    assert r.status_code == 401


def test_form_login_needs_csrf_token(app, client):
    with app.app_context():
        create_user("alice", "correct horse")
    r = client.post("/login", data={"username": "alice", "password": "correct horse"})
    assert r.status_code == 400 and LoginSession.select().count() == 0
    token = form_token(client)
    r = client.post("/login", data={"username": "alice", "password": "correct horse", "csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert LoginSession.select().count() == 1


def test_form_login_failure_shows_form_with_message(app, client):
    token = form_token(client)
    r = client.post("/login", data={"username": "alice", "password": "wrong horse", "csrf_token": token})
    page = r.get_data(as_text=True)
    assert r.status_code == 401 and "Invalid username or password" in page
    assert 'id="flaskpush-signin"' in page


def test_logout_deletes_server_session(client):
    client.post("/register", json={"username": "alice", "password": "correct horse"})
    stolen_cookie = client.get_cookie("session").value
    assert LoginSession.select().count() == 1
    assert client.post("/logout", json={}).json == {"ok": True}
    assert LoginSession.select().count() == 0
    # Replaying the old cookie does not sign anyone in.
    replay = client.application.test_client()
    replay.set_cookie("session", stolen_cookie)
    assert "Signed in as" not in replay.get("/").get_data(as_text=True)


def test_anonymous_index_shows_sign_in(client):
    r = client.get("/")
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    assert 'id="flaskpush-signin"' in page and 'id="flaskpush-signup"' in page
