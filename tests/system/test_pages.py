"""The web process serves the pages and the npm registry's socket.io client, with no CDN."""

from __future__ import annotations

import re

import pytest


def test_the_dashboard_is_served_at_the_root(system):
    response = system.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.text
    assert 'src="/vendor/socket.io.min.js"' in page
    assert 'href="/test-websocket.html"' in page
    assert 'data-max-x="10000000"' in page
    # everything the page loads comes from this server
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_the_socket_io_client_comes_from_node_modules(system):
    response = system.get("/vendor/socket.io.min.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["Content-Type"]
    assert "Socket.IO v4." in response.text[:200]
    assert system.get("/vendor/socket.io.min.js.map").status_code == 200


def test_only_the_listed_vendor_files_are_served(system):
    for name in ("package.json", "..%2Fpackage.json", "socket.io.js"):
        response = system.get(f"/vendor/{name}")
        assert response.status_code == 404
        assert "error" in response.json()


def test_the_html_test_client_is_served(system):
    response = system.get("/test-websocket.html")
    assert response.status_code == 200
    page = response.text
    for label in ("Connect", "Disconnect", "Clear log"):
        assert f">{label}</button>" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert '<script src="test-websocket.js"' in page
    for name in ("test-websocket.js", "test-websocket.css"):
        assert system.get(f"/{name}").status_code == 200


@pytest.mark.parametrize("path", ["/", "/test-websocket.html"])
def test_pages_have_no_inline_script_and_send_a_csp(system, path):
    response = system.get(path)
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "object-src 'none'" in policy and "base-uri 'none'" in policy
    # every <script> has a src on this server; no inline code, no on* handler attributes
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", response.text, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"\son[a-z]+=", response.text)


def test_static_files_of_the_dashboard(system):
    assert system.get("/static/dashboard.js").status_code == 200
    assert system.get("/static/dashboard.css").status_code == 200
