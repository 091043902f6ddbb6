"""The web.py side, requested in-process with ``app.request``."""

import app


def test_home_page_loads_the_socket_scripts():
    response = app.app.request("/")
    assert response.status == "200 OK"
    page = response.data.decode()
    assert "<title>{{ cookiecutter.project_name }}</title>" in page
    assert '<script src="/socket.io/wsio.js"' in page


def test_unknown_page_is_404():
    assert app.app.request("/nowhere").status.startswith("404")
