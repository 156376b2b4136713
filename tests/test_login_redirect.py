"""After login, ``next`` is followed only to a same-site relative path (issue 12, finding 6):
``/login?next=/%09/example.com`` redirected to ``//example.com`` (browsers drop the tab),
and ``next=/%0A/…`` was a 500 (a newline in the Location header)."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.web.console.redirects import safe_next
from tests.test_console import token

HOME = "/"

UNSAFE = [
    "/%09/example.com", "/%0A/example.com", "/%0D/example.com", "/%00/example.com",
    "/%20/example.com", "/%E2%80%8B/example.com", "/%E3%80%80/example.com",
    "//example.com", "///example.com", "/\\example.com", "/%5C/example.com", "/%5Cexample.com",
    "/%2F/example.com", "/%252F/example.com", "/%25252F%25252Fexample.com",
    "https://example.com", "http:/example.com", "javascript:alert(1)", "example.com",
    "%2F%2Fexample.com", "/%09", "/x%0A%0DSet-Cookie:%20a=b", "", "/query?x=%0A",
]


def _login(client, creds, query: str):
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login" + query, data={
        "csrf_token": token(page), "username": creds["researcher"]["username"],
        "password": creds["researcher"]["password"]})


def _lands_on_this_site(location: str) -> bool:
    parts = urlsplit(location)
    return parts.netloc in ("", "localhost") and not location.startswith("//")


@pytest.mark.parametrize("target", UNSAFE)
def test_unsafe_next_goes_home(client, creds, target):
    r = _login(client, creds, "?next=" + target)
    assert r.status_code == 302, r.status_code
    location = r.headers["Location"]
    assert urlsplit(location).path == HOME and _lands_on_this_site(location), location


@pytest.mark.parametrize("target", ["/query", "/query?approval=1", "/history?page=2#top",
                                    "/query?sql=SELECT%20COUNT(*)%20FROM%20residents", "/数据"])
def test_same_site_path_is_followed(client, creds, target):
    r = _login(client, creds, "?next=" + quote(target, safe=""))
    assert r.status_code == 302
    assert unquote(urlsplit(r.headers["Location"]).path) == urlsplit(target).path


@pytest.mark.parametrize("target", UNSAFE)
def test_language_switch_next_is_checked_too(client, target):
    page = client.get("/login").get_data(as_text=True)
    r = client.post("/lang", data={"csrf_token": token(page), "lang": "en", "next": target})
    assert r.status_code in (302, 303)
    assert _lands_on_this_site(r.headers["Location"]), r.headers["Location"]


@given(st.text(max_size=40) | st.from_regex(r"\A/[%/\\\t\n a-zA-Z0-9.:]{0,20}\Z"))
@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_safe_next_never_raises_and_never_leaves_the_site(target):
    result = safe_next(target)
    if result is not None:
        assert result == target and result.startswith("/") and not result.startswith(("//", "/\\"))
        assert not urlsplit(result).netloc and not urlsplit(result).scheme
        assert not any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in result)


def test_login_with_any_next_is_never_5xx(client, creds):
    @given(st.text(max_size=30))
    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(target):
        fresh = client.application.test_client()  # signed out: the login form again
        r = _login(fresh, creds, "?next=" + quote(target, safe=""))
        assert r.status_code < 500
        if r.status_code == 302:
            assert _lands_on_this_site(r.headers["Location"]), r.headers["Location"]

    check()
