"""webpy_socketio.settings: names, values, the settings module, configure()."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from support import ROOT, python_env

from webpy_socketio import settings
from webpy_socketio.exceptions import ImproperlyConfigured


def test_defaults():
    assert settings.SOCKETIO_PORT == 8000
    assert settings.SOCKETIO_HOST == "127.0.0.1"
    assert settings.SOCKETIO_CORS_ALLOWED_ORIGINS is None  # same origin
    assert settings.get("SOCKETIO_MESSAGE_QUEUE") is None
    assert set(settings.as_dict()) == set(settings.DEFAULTS)


def test_unknown_name_names_the_closest_valid_one():
    with pytest.raises(
        ImproperlyConfigured, match="Unknown setting SOCKETIO_PROT .* Did you mean SOCKETIO_PORT"
    ):
        settings.configure(SOCKETIO_PROT=9000)
    with pytest.raises(AttributeError):
        settings.NOT_A_SETTING  # noqa: B018


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SOCKETIO_PORT", 0, "positive integer"),
        ("SOCKETIO_PORT", 70000, "at most 65535"),
        ("SOCKETIO_PORT", "8000", "positive integer"),
        ("SOCKETIO_MAX_MESSAGE_BYTES", True, "positive integer"),
        ("SOCKETIO_HOST", "", "non-empty string"),
        ("SOCKETIO_MESSAGE_LOG_FORMAT", "%(MESSAGE)", "not a valid %-format"),
        ("SOCKETIO_MESSAGE_LOG_FORMAT", 3, "format string or None"),
        ("SOCKETIO_CORS_ALLOWED_ORIGINS", [1], "list of origins"),
        ("SOCKETIO_MESSAGE_QUEUE", "localhost:6379", "must be a URL"),
        ("SOCKETIO_PING_TIMEOUT", -1, "positive number of seconds"),
    ],
)
def test_bad_values_are_refused_before_anything_changes(name, value, message):
    before = settings.get(name)
    with pytest.raises(ImproperlyConfigured, match=message):
        settings.configure(**{name: value})
    assert settings.get(name) == before


def test_configure_wins_and_good_values_pass():
    settings.configure(SOCKETIO_PORT=9001, SOCKETIO_CORS_ALLOWED_ORIGINS="*")
    assert settings.SOCKETIO_PORT == 9001
    assert settings.SOCKETIO_CORS_ALLOWED_ORIGINS == "*"
    settings.configure(SOCKETIO_MESSAGE_LOG_FORMAT=None)
    assert settings.SOCKETIO_MESSAGE_LOG_FORMAT is None


def _run(code: str, cwd, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=python_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_module_is_read_and_checked(tmp_path):
    (tmp_path / "settings.py").write_text("SOCKETIO_PORT = 8123\nOTHER = 1\n")
    (tmp_path / "typo_settings.py").write_text("SOCKETIO_MESAGE_LOG_FORMAT = None\n")
    code = "from webpy_socketio import settings; print(settings.SOCKETIO_PORT)"
    result = _run(code, tmp_path)
    assert result.stdout.strip() == "8123", result.stderr
    result = _run(code, tmp_path, WSIO_SETTINGS_MODULE="typo_settings")
    assert (
        "Unknown setting SOCKETIO_MESAGE_LOG_FORMAT in settings module 'typo_settings'"
        in result.stderr
    )
    assert "Did you mean SOCKETIO_MESSAGE_LOG_FORMAT?" in result.stderr
    result = _run(code, tmp_path, WSIO_SETTINGS_MODULE="no_such_module")
    assert "Could not import the settings module 'no_such_module'" in result.stderr


def test_no_settings_module_means_defaults(tmp_path):
    result = _run("from webpy_socketio import settings; print(settings.SOCKETIO_PORT)", tmp_path)
    assert result.stdout.strip() == "8000", result.stderr
    assert ROOT.is_dir()


def test_live_engine_follows_origin_and_size_settings():
    from webpy_socketio.engine import get_engine

    engine = get_engine()
    settings.configure(
        SOCKETIO_CORS_ALLOWED_ORIGINS=["https://a.example"], SOCKETIO_MAX_MESSAGE_BYTES=1234
    )
    check = engine.eio.cors_allowed_origins
    own = {"HTTP_HOST": "app.example", "wsgi.url_scheme": "https"}
    assert check("https://a.example", own) and check("https://app.example", own)
    assert not check("https://evil.example", own) and not check(None, own)
    assert engine.eio.max_http_buffer_size == 1234
    settings.configure(SOCKETIO_CORS_ALLOWED_ORIGINS=None, SOCKETIO_MAX_MESSAGE_BYTES=100_000)
    assert engine.eio.cors_allowed_origins is None


# conftest's clean_global_state: what one test sets, the next never sees
def test_state_left_behind_by_a_test():
    import os

    settings.configure(SOCKETIO_PORT=9999)
    os.environ["WSIO_SETTINGS_MODULE"] = "left_behind_settings"
    assert settings.SOCKETIO_PORT == 9999


def test_is_gone_in_the_next():
    import os

    assert "WSIO_SETTINGS_MODULE" not in os.environ
    assert settings.SOCKETIO_PORT == 8000
