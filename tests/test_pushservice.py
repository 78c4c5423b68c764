"""The local push service behaves like a strict real one.

Everything is sent with the real pywebpush (or requests carrying a body that
pywebpush encrypted), so these tests also show that the service accepts exactly
what a correct sender produces and refuses each way of getting it wrong.
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid, Vapid01
from py_vapid.jwt import sign
from pywebpush import WebPusher, WebPushException, webpush

from conftest import wait_until
from pushservice import PushService, b64url

SUB = "mailto:ops@example.com"
PAYLOAD = json.dumps({"title": "Hello", "body": "from the test"})


@pytest.fixture
def service():
    with PushService() as svc:
        yield svc


@pytest.fixture
def subscription(service):
    return service.new_subscription()


@pytest.fixture
def vapid(tmp_path):
    """A VAPID key saved as the app would keep it, and loaded back."""
    path = tmp_path / "vapid.pem"
    key = Vapid()
    key.generate_keys()
    key.save_key(str(path))
    return Vapid.from_file(str(path))


@pytest.fixture
def vapid_path(vapid, tmp_path):
    return str(tmp_path / "vapid.pem")


def push(subscription, vapid_path, data=PAYLOAD, timeout=5, **kwargs):
    """One pywebpush call as flaskpush makes it (fresh claims dict each time)."""
    return webpush(subscription, data, vapid_private_key=vapid_path,
                   vapid_claims={"sub": SUB}, ttl=60, timeout=timeout, **kwargs)


def refused(subscription, vapid_path, **kwargs):
    """The response of a push that pywebpush reports as failed."""
    with pytest.raises(WebPushException) as failure:
        push(subscription, vapid_path, **kwargs)
    return failure.value.response


def claims_for(service, **overrides):
    return {"sub": SUB, "aud": service.url, "exp": int(time.time()) + 3600, **overrides}


def authorization(vapid, service, **overrides):
    """A correct `vapid t=..., k=...` header, with claims overridden to break it."""
    return vapid.sign(claims_for(service, **overrides))["Authorization"]


def public_key(vapid):
    return b64url(vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))


def post(subscription, authorization, body=None, **headers):
    """POST a pywebpush-encrypted body with chosen headers, to test one at a time."""
    if body is None:
        body = WebPusher(subscription).encode(PAYLOAD.encode())["body"]
    sent = {"TTL": "60", "Content-Encoding": "aes128gcm", "Authorization": authorization}
    sent.update(headers)
    return requests.post(subscription["endpoint"], data=body, timeout=5,
                         headers={k: v for k, v in sent.items() if v is not None})


# -- what gets through --------------------------------------------------------

def test_push_is_verified_and_decrypted(service, subscription, vapid, vapid_path):
    response = push(subscription, vapid_path)
    assert response.status_code == 201
    assert response.headers["Location"].startswith(service.url)
    [message] = service.messages(subscription["endpoint"])
    assert message.json() == {"title": "Hello", "body": "from the test"}
    assert message.ttl == 60
    assert message.vapid_claims["sub"] == SUB
    assert message.vapid_claims["aud"] == service.url
    assert message.vapid_key == public_key(vapid)


def test_subscription_has_browser_shape(service, subscription):
    assert subscription["endpoint"].startswith(service.url + "/push/")
    assert subscription["expirationTime"] is None
    assert subscription["keys"]["p256dh"].startswith("B")  # uncompressed point
    assert len(subscription["keys"]["auth"]) == 22  # 16 bytes, no padding


def test_urgency_and_topic_are_recorded(service, subscription, vapid_path):
    push(subscription, vapid_path, headers={"Urgency": "high", "Topic": "news_1"})
    [message] = service.messages()
    assert (message.urgency, message.topic) == ("high", "news_1")


def test_wait_for_returns_messages_sent_from_another_thread(service, subscription, vapid_path):
    sender = threading.Thread(target=push, args=(subscription, vapid_path))
    sender.start()
    [message] = service.wait_for(1, timeout=5)
    sender.join()
    assert message.endpoint == subscription["endpoint"]


def test_wait_for_times_out_saying_what_came(service):
    with pytest.raises(TimeoutError, match="0 of 1"):
        service.wait_for(1, timeout=0.1)


def test_body_of_exactly_4096_bytes_is_accepted(service, subscription, vapid_path):
    largest = 4096 - 86 - 1 - 16  # aes128gcm header, padding delimiter, tag
    assert push(subscription, vapid_path, data="x" * largest).status_code == 201
    assert refused(subscription, vapid_path, data="x" * (largest + 1)).status_code == 413


# -- VAPID: 401 ----------------------------------------------------------------

def test_signature_from_another_key_is_401(service, subscription, vapid):
    other = Vapid()
    other.generate_keys()
    token = authorization(vapid, service).split(" t=")[1].split(",k=")[0]
    response = post(subscription, f"vapid t={token}, k={public_key(other)}")
    assert response.status_code == 401
    assert "signature" in response.text


def test_wrong_aud_is_401(service, subscription, vapid):
    response = post(subscription, authorization(vapid, service, aud="http://127.0.0.1:1"))
    assert response.status_code == 401
    assert "aud" in response.text


def test_expired_jwt_is_401(service, subscription, vapid):
    response = post(subscription, authorization(vapid, service, exp=int(time.time()) - 1))
    assert response.status_code == 401
    assert "exp" in response.text


def test_exp_more_than_24_hours_ahead_is_401(service, subscription, vapid):
    far = int(time.time()) + 25 * 3600
    response = post(subscription, authorization(vapid, service, exp=far))
    assert response.status_code == 401
    assert "24 h" in response.text


def test_cached_token_is_refused_once_expired(service, subscription, vapid):
    header = authorization(vapid, service, exp=int(time.time()) + 2)
    assert post(subscription, header).status_code == 201
    time.sleep(2.1)
    assert post(subscription, header).status_code == 401


def test_sub_that_is_not_mailto_or_https_is_401(service, subscription, vapid):
    token = sign(claims_for(service, sub="ops@example.com"), vapid.private_key)
    response = post(subscription, f"vapid t={token},k={public_key(vapid)}")
    assert response.status_code == 401
    assert "sub" in response.text


def test_alg_other_than_es256_is_401(service, subscription, vapid):
    token = sign(claims_for(service), vapid.private_key)
    none = b64url(b'{"typ":"JWT","alg":"none"}')
    response = post(subscription, f"vapid t={none}.{token.split('.', 1)[1]},k={public_key(vapid)}")
    assert response.status_code == 401
    assert "alg" in response.text


def test_missing_authorization_is_401(subscription):
    response = post(subscription, None)
    assert response.status_code == 401


def test_legacy_webpush_scheme_is_401(service, subscription, vapid):
    legacy = Vapid01(private_key=vapid.private_key).sign(claims_for(service))
    response = post(subscription, legacy["Authorization"], **{"Crypto-Key": legacy["Crypto-Key"]})
    assert response.status_code == 401
    assert "scheme" in response.text


# -- RFC 8030 headers, size, encryption: 400 / 413 -------------------------------

def test_missing_ttl_is_400(subscription, vapid, service):
    response = post(subscription, authorization(vapid, service), TTL=None)
    assert response.status_code == 400
    assert "TTL" in response.text


def test_negative_ttl_is_400(subscription, vapid, service):
    assert post(subscription, authorization(vapid, service), TTL="-1").status_code == 400


def test_legacy_aesgcm_encoding_is_400(subscription, vapid_path):
    response = refused(subscription, vapid_path, content_encoding="aesgcm")
    assert response.status_code == 400
    assert "Content-Encoding" in response.text


def test_body_over_4096_bytes_is_413(service, subscription, vapid_path):
    response = refused(subscription, vapid_path, data="x" * 4096)
    assert response.status_code == 413
    assert service.messages() == []


@pytest.mark.parametrize("headers", [{"Urgency": "urgent"}, {"Topic": "x" * 33}, {"Topic": "a b"}])
def test_bad_urgency_or_topic_is_400(subscription, vapid_path, headers):
    assert refused(subscription, vapid_path, headers=headers).status_code == 400


def test_body_encrypted_for_another_subscription_is_400(service, subscription, vapid):
    body = WebPusher(service.new_subscription()).encode(PAYLOAD.encode())["body"]
    response = post(subscription, authorization(vapid, service), body=body)
    assert response.status_code == 400
    assert "decryption failed" in response.text


# -- endpoints: 404 / 410 ----------------------------------------------------------

def test_unknown_endpoint_is_404(service, subscription, vapid_path):
    unknown = {**subscription, "endpoint": service.url + "/push/never-issued"}
    assert refused(unknown, vapid_path).status_code == 404


def test_removed_endpoint_is_410(service, subscription, vapid_path):
    service.remove(subscription["endpoint"])
    assert refused(subscription, vapid_path).status_code == 410


# -- scripted answers ---------------------------------------------------------------

@pytest.mark.parametrize("status", [404, 410, 413, 429, 500, 503])
def test_scripted_status_then_back_to_normal(service, subscription, vapid_path, status):
    service.script(subscription["endpoint"], status)
    assert refused(subscription, vapid_path).status_code == status
    assert push(subscription, vapid_path).status_code == 201
    assert [r.status for r in service.requests] == [status, 201]
    assert len(service.messages()) == 1


def test_retry_after_passes_through(service, subscription, vapid_path):
    service.script(subscription["endpoint"], (429, {"Retry-After": "2"}))
    with pytest.raises(WebPushException) as failure:
        push(subscription, vapid_path)
    assert failure.value.status_code == 429
    assert failure.value.retry_after == "2"


def test_scripted_answers_are_used_in_order(service, subscription, vapid_path):
    service.script(subscription["endpoint"], 500, 503, 429)
    for _ in range(3):
        refused(subscription, vapid_path)
    push(subscription, vapid_path)
    assert [r.status for r in service.requests] == [500, 503, 429, 201]
    assert service.stats() == {"received": 4, "accepted": 1, "rejected": {},
                               "scripted": {"500": 1, "503": 1, "429": 1}}


def test_scripted_answer_waits_for_a_request_that_passes_vapid(service, subscription, vapid):
    service.script(subscription["endpoint"], 429)
    bad_aud = authorization(vapid, service, aud="http://127.0.0.1:1")
    assert post(subscription, bad_aud).status_code == 401
    assert post(subscription, authorization(vapid, service)).status_code == 429


def test_reset_is_a_connection_error(service, subscription, vapid_path):
    service.script(subscription["endpoint"], "reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        push(subscription, vapid_path)
    assert service.requests[0].status is None
    assert push(subscription, vapid_path).status_code == 201


def test_stall_is_a_timeout(service, subscription, vapid_path):
    service.script(subscription["endpoint"], "stall")
    with pytest.raises(requests.exceptions.ReadTimeout):
        push(subscription, vapid_path, timeout=0.3)


def test_slow_answers_normally_after_the_delay(service, subscription, vapid_path):
    service.script(subscription["endpoint"], ("slow", 0.3))
    started = time.monotonic()
    assert push(subscription, vapid_path).status_code == 201
    assert time.monotonic() - started >= 0.3
    assert len(service.messages()) == 1


def test_script_refuses_a_typo(service, subscription):
    with pytest.raises(ValueError):
        service.script(subscription["endpoint"], "stal")


def test_stop_is_prompt_while_a_request_is_stalled(vapid_path):
    service = PushService().start()
    subscription = service.new_subscription()
    service.script(subscription["endpoint"], "stall")
    errors = []
    sender = threading.Thread(target=lambda: errors.append(_error_of(subscription, vapid_path)))
    sender.start()
    wait_until(lambda: service.requests)
    started = time.monotonic()
    service.stop()
    assert time.monotonic() - started < 1
    sender.join(5)
    assert isinstance(errors[0], requests.exceptions.ConnectionError)


def _error_of(subscription, vapid_path):
    try:
        push(subscription, vapid_path, timeout=30)
    except Exception as error:  # the test asserts on which one
        return error


# -- as a process --------------------------------------------------------------------

SCRIPT = Path(__file__).with_name("pushservice.py")


def test_process_serves_and_reports_stats(tmp_path, vapid_path):
    out = tmp_path / "service.json"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", "0", "--subscriptions", "2", "--out", str(out)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        ready = json.loads(process.stdout.readline())
        issued = json.loads(out.read_text())
        assert issued["url"] == ready["url"] and ready["url"].startswith("http://127.0.0.1:")
        first, second = issued["subscriptions"]
        assert push(first, vapid_path).status_code == 201
        assert refused({**second, "keys": first["keys"]}, vapid_path).status_code == 400
        assert requests.get(ready["stats_url"], timeout=5).json() == {
            "received": 2, "accepted": 1, "rejected": {"decrypt": 1}, "scripted": {}}
    finally:
        process.terminate()
        final, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert json.loads(final)["accepted"] == 1


def test_process_stops_when_stdin_closes():
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--watch-stdin"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    ready = json.loads(process.stdout.readline())
    assert len(ready["subscriptions"]) == 1
    final, _ = process.communicate(timeout=10)  # closes stdin, reads to the end
    assert json.loads(final)["received"] == 0
    assert process.returncode == 0
