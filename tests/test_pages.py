"""What the server renders for the browser client, without a browser."""
import pytest


def test_service_worker_is_served_from_the_root_uncached(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype in ("text/javascript", "application/javascript")
    assert response.headers["Cache-Control"] == "no-cache"
    assert b'addEventListener("push"' in response.data


def test_the_page_includes_the_client_script(client):
    page = client.get("/").get_data(as_text=True)
    assert 'src="/static/flaskpush.js"' in page
    assert client.get("/static/flaskpush.js").status_code == 200


@pytest.mark.app_config(OPEN_REGISTRATION=False)
def test_no_sign_up_form_while_registration_is_closed(client):
    page = client.get("/").get_data(as_text=True)
    assert 'id="flaskpush-signin"' in page and 'id="flaskpush-signup"' not in page
