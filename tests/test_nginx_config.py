"""``wsio nginx-config``: rendered text (golden files), validation of every
value a user passes, settings as defaults, ``--output``, and ``nginx -t`` on
every mode and option combination with a real nginx.

Regenerate the golden files after an intended change with
``WSIO_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_nginx_config.py``, then
read the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import TESTS, output_dir, require
from webpy_socketio.cli import nginx, nginx_run, nginx_values
from webpy_socketio.cli.main import cli

from webpy_socketio import settings

GOLDEN = TESTS / "golden" / "nginx"
UPDATE = os.environ.get("WSIO_UPDATE_GOLDEN") == "1"
CERT, KEY = "/etc/wsio-test/cert.pem", "/etc/wsio-test/key.pem"

#: golden file name -> command-line options
CASES = {
    "http-default": [],
    "http-server-names-listen": [
        "--server-name",
        "example.com",
        "--server-name",
        "*.example.org",
        "--listen",
        "8080",
        "--listen",
        "[::]:8080",
    ],
    "http-workers-hash": ["--workers", "3", "--upstream", "127.0.0.1:9000"],
    "http-workers-ip-hash": ["--workers", "2", "--sticky", "ip_hash"],
    "http-upstreams-cookie": [
        "--upstream",
        "10.0.0.5:8000",
        "--upstream",
        "10.0.0.6:8000",
        "--sticky",
        "cookie",
    ],
    "http-static": ["--static-root", "/srv/mychat/static", "--static-url", "assets"],
    "http-tls": ["--tls-cert", CERT, "--tls-key", KEY, "--server-name", "chat.example.com"],
    "http-tls-port-cookie": [
        "--tls-cert",
        CERT,
        "--tls-key",
        KEY,
        "--listen",
        "8080",
        "--tls-listen",
        "8443",
        "--workers",
        "2",
        "--sticky",
        "cookie",
    ],
    "http-name-resource": ["--name", "chat", "--resource", "/rt/"],
    "stream-default": ["--mode", "stream"],
    "stream-workers": ["--mode", "stream", "--workers", "2", "--listen", "127.0.0.1:9443"],
}


@pytest.fixture
def run(monkeypatch, tmp_path):
    """Run ``wsio nginx-config ARGS`` in an empty folder (no ./static, no
    settings module) with the settings re-read from scratch."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    # each test writes its own settings modules; forget ones imported before
    for name in ("settings", "prod_settings"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, ["nginx-config", *args], catch_exceptions=False)

    yield invoke
    for name in ("settings", "prod_settings"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(run, case):
    result = run(*CASES[case])
    assert result.exit_code == 0, result.output
    golden = GOLDEN / f"{case}.conf"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(result.stdout)
    assert golden.is_file(), f"no golden file {golden}; run with WSIO_UPDATE_GOLDEN=1"
    assert result.stdout == golden.read_text()


def directives(text: str) -> list[str]:
    """The config's directive lines without comments and indentation."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def test_http_essentials(run):
    text = run("--workers", "2").stdout
    lines = directives(text)
    for needed in [
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade           $http_upgrade;",
        "proxy_set_header Connection        $wsio_connection;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host  $wsio_host;",
        "proxy_set_header Host              $wsio_host;",
        "proxy_buffering off;",
        "hash $remote_addr consistent;",
        "server 127.0.0.1:8000;",
        "server 127.0.0.1:8001;",
        "location /socket.io/ {",
        "location / {",
    ]:
        assert needed in lines, needed
    # with the default heartbeat (25 + 20 s) the timeouts must exceed 45 s
    assert "proxy_read_timeout 60s;" in lines and "proxy_send_timeout 60s;" in lines


def test_single_upstream_has_no_sticky_policy(run):
    text = run().stdout
    assert "hash" not in "\n".join(directives(text))
    assert "ip_hash" not in text.split("upstream", 1)[1]


def test_settings_give_the_defaults(run, tmp_path):
    (tmp_path / "settings.py").write_text(
        "SOCKETIO_HOST = '0.0.0.0'\nSOCKETIO_PORT = 9100\n"
        "SOCKETIO_PING_INTERVAL = 50\nSOCKETIO_PING_TIMEOUT = 40.5\n"
        "SOCKETIO_MAX_MESSAGE_BYTES = 5_000_000\n"
    )
    lines = directives(run("--workers", "2").stdout)
    # a server on every address is reached on loopback
    assert "server 127.0.0.1:9100;" in lines and "server 127.0.0.1:9101;" in lines
    assert "proxy_read_timeout 106s;" in lines  # ceil(50 + 40.5) + 15
    assert "client_max_body_size 4899k;" in lines  # never below the app's own limit


def test_settings_option_names_another_module(run, tmp_path):
    (tmp_path / "prod_settings.py").write_text("SOCKETIO_PORT = 7000\n")
    lines = directives(run("--settings", "prod_settings").stdout)
    assert "server 127.0.0.1:7000;" in lines


def test_bad_settings_module_is_a_clear_error(run, tmp_path):
    (tmp_path / "settings.py").write_text("SOCKETIO_PROT = 7000\n")
    result = run()
    assert result.exit_code == 1
    assert "Did you mean SOCKETIO_PORT?" in result.output
    assert result.stdout.count("\n") <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "80;"], "--listen '80;' contains ';'"),
        (["--listen", "0"], "--listen '0' needs a port from 1 to 65535"),
        (["--listen", "8²"], "is not an address such as"),
        (["--upstream", "127.0.0.1:8²"], "needs a port from 1 to 65535, not '8²'"),
        (["--listen", "1.2.3.4:70000"], "needs a port from 1 to 65535, not '70000'"),
        (["--listen", "80 default_server"], "--listen '80 default_server' contains ' '"),
        (["--listen", "[::1:80"], "is not a host name, an IPv4 address"),
        (["--listen", "80", "--listen", "80"], "--listen 80 is given twice"),
        (["--server-name", "a.com;evil"], "contains ';'"),
        (["--server-name", "a.com\nserver_name b"], "contains '\\\\n'"),
        (["--server-name", "~^(?<x>.+)$"], "contains '$'"),
        (["--server-name", "~^www"], "Regular expressions are not accepted"),
        (["--server-name", "-bad-.com"], "is not a host name"),
        (["--upstream", "127.0.0.1"], "is not an address such as 127.0.0.1:8000"),
        (["--upstream", "8000"], "needs a host too, as in 127.0.0.1:8000"),
        (["--upstream", "h{o}st:80"], "contains '{'"),
        (["--upstream", "under_score:80"], "is not a host name"),
        (["--upstream", "a:1", "--upstream", "b:2", "--workers", "2"], "takes one --upstream"),
        (["--upstream", "127.0.0.1:65535", "--workers", "2"], "runs past 65535"),
        (["--workers", "0"], "--workers must be from 1 to 64, not 0"),
        (["--static-root", "/srv/it's"], 'contains "\'"'),
        (["--static-root", "/srv/$document_root"], "contains '$'"),
        (["--static-root", "/srv/my files"], "contains ' '"),
        (["--static-url", "/"], "must be a path below /"),
        (["--static-url", "/a/../b/"], "must be a path below /"),
        (["--static-url", "/socket.io/"], "is the Socket.IO path"),
        (["--tls-cert", "/c.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "/k.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-listen", "443"], "--tls-listen needs --tls-cert and --tls-key"),
        (["--tls-cert", "/c", "--tls-key", "/k", "--listen", "443"], "both use port 443"),
        (["--tls-cert", '/c"', "--tls-key", "/k"], "contains '\"'"),
        (["--name", "my-app"], "--name 'my-app' must start with a letter"),
        (["--resource", "socket io"], "contains ' '"),
        (["--settings", "../etc"], "is not a Python module name"),
        (["--mode", "stream", "--server-name", "a.com"], "--server-name needs --mode http"),
        (["--mode", "stream", "--static-root", "/srv"], "--static-root needs --mode http"),
        (["--mode", "stream", "--tls-cert", "/c", "--tls-key", "/k"], "TLS needs --mode http"),
        (["--mode", "stream", "--sticky", "ip_hash"], "--sticky ip_hash needs --mode http"),
    ],
)
def test_bad_values_are_refused_with_one_line(run, args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert message in errors[0]
    assert "server {" not in result.output  # nothing rendered


UNSAFE = ";{}'\"$#\\` \t\n\r"


@hsettings(max_examples=150, deadline=None)
@given(
    option=st.sampled_from(
        ["--listen", "--server-name", "--upstream", "--static-root", "--static-url", "--resource"]
    ),
    value=st.text(min_size=1, max_size=30),
)
def test_no_value_injects_a_directive(option, value):
    """Whatever is passed, it is refused or lands in the config without a
    character nginx reads as syntax."""
    options = {
        "--listen": "listen",
        "--server-name": "server_name",
        "--upstream": "upstream",
        "--static-root": "static_root",
        "--static-url": "static_url",
        "--resource": "resource",
    }
    repeatable = option in ("--listen", "--server-name", "--upstream")
    try:
        config = nginx.build_config(
            dict(settings.DEFAULTS), **{options[option]: (value,) if repeatable else value}
        )
    except nginx_values.ConfigError as exc:
        assert "\n" not in str(exc)
        return
    values = (
        [str(a) for a in config.listen + config.upstreams]
        + config.server_names
        + [
            config.static_root or "",
            config.static_url,
            config.resource,
        ]
    )
    for shown in values:
        assert not set(shown) & set(UNSAFE), shown
        assert shown.isprintable()


def test_output_writes_a_file(run, tmp_path):
    target = tmp_path / "site.conf"
    result = run("--output", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert f"Wrote {target}" in result.stderr
    assert "location /socket.io/ {" in target.read_text()
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in tmp_path.iterdir()] == ["site.conf"]  # no temp file left


def test_output_to_a_missing_folder_is_refused(run, tmp_path):
    result = run("--output", str(tmp_path / "nope" / "site.conf"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_static_folder_of_the_project_is_the_default(run, tmp_path):
    (tmp_path / "static").mkdir()
    lines = directives(run().stdout)
    assert f"alias {tmp_path}/static/;" in lines


def test_check_without_nginx_says_so(run, monkeypatch):
    monkeypatch.setattr(nginx, "find_nginx", lambda: None)
    result = run("--check")
    assert result.exit_code == 1
    assert "nginx is not installed" in result.stderr
    assert "location /socket.io/ {" in result.stdout  # the config is still printed


def test_help_lists_the_command_without_importing_mako():
    code = (
        "import sys; from webpy_socketio.cli.main import cli\n"
        "try:\n    cli(['nginx-config', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'mako' not in sys.modules and 'gevent' not in sys.modules, 'heavy import'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--upstream HOST:PORT" in result.stdout


# -- nginx -t with a real nginx ----------------------------------------------


def nginx_or_skip() -> str:
    path = nginx_run.find_nginx()
    require(path is not None, "nginx is not installed; apt install nginx libnginx-mod-stream")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def cert_pair() -> tuple[str, str]:
    """A self-signed certificate made by openssl for 127.0.0.1."""
    openssl = require_openssl()
    folder = output_dir("nginx-config") / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    make_cert(openssl, cert, key)
    return str(cert), str(key)


def require_openssl() -> str:
    import shutil

    path = shutil.which("openssl")
    require(path is not None, "openssl is not installed; apt install openssl")
    assert path is not None
    return path


def make_cert(openssl: str, cert: Path, key: Path) -> None:
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


#: nginx -t runs on each: mode x upstreams x sticky x static x TLS x names
COMBINATIONS = [
    [],
    ["--workers", "3"],
    ["--workers", "3", "--sticky", "ip_hash"],
    ["--workers", "3", "--sticky", "cookie"],
    ["--static-root", "{static}", "--server-name", "example.com", "--server-name", ".example.org"],
    ["--listen", "127.0.0.1:8080", "--listen", "[::1]:8080", "--name", "chat", "--resource", "rt"],
    ["--tls-cert", "{cert}", "--tls-key", "{key}"],
    ["--tls-cert", "{cert}", "--tls-key", "{key}", "--tls-listen", "8443", "--workers", "2"],
    [
        "--tls-cert",
        "{cert}",
        "--tls-key",
        "{key}",
        "--workers",
        "2",
        "--sticky",
        "cookie",
        "--static-root",
        "{static}",
    ],
    ["--mode", "stream"],
    ["--mode", "stream", "--workers", "4", "--listen", "127.0.0.1:9443"],
    ["--mode", "stream", "--upstream", "10.1.2.3:8000", "--upstream", "[::1]:8000"],
]


@pytest.mark.nginx
@pytest.mark.parametrize("args", COMBINATIONS, ids=lambda a: " ".join(a) or "defaults")
def test_nginx_accepts_every_combination(run, args, cert_pair, tmp_path):
    nginx_or_skip()
    (tmp_path / "assets").mkdir()
    values = {"cert": cert_pair[0], "key": cert_pair[1], "static": str(tmp_path / "assets")}
    result = run(*[a.format(**values) for a in args], "--check")
    assert result.exit_code == 0, result.output
    assert "test is successful" in result.stderr
    assert "nginx -t: the config is valid." in result.stderr


@pytest.mark.nginx
def test_check_reports_what_nginx_rejects(run, tmp_path):
    nginx_or_skip()
    missing = tmp_path / "missing-cert.pem"
    result = run("--tls-cert", str(missing), "--tls-key", str(missing), "--check")
    assert result.exit_code == 1
    assert "nginx -t rejected the config" in result.stderr
    assert str(missing) in result.stderr  # nginx's own reason is shown


@pytest.mark.nginx
def test_two_configs_with_different_names_live_in_one_nginx(run, tmp_path):
    """--name keeps upstream and map names apart, so two apps can share an
    nginx (nginx refuses a duplicate upstream or map variable)."""
    binary = nginx_or_skip()
    one = run("--listen", "8081", "--server-name", "one.example").stdout
    two = run(
        "--listen",
        "8082",
        "--server-name",
        "two.example",
        "--name",
        "two",
        "--upstream",
        "127.0.0.1:9000",
    ).stdout
    ok, report = nginx_run.check_with_nginx(one + "\n" + two, "http", binary, "<both>")
    assert ok, report
    clash = run("--listen", "8082", "--server-name", "two.example").stdout
    ok, report = nginx_run.check_with_nginx(one + "\n" + clash, "http", binary, "<both>")
    assert not ok and "duplicate" in report
