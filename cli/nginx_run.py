"""Running nginx on a generated config: finding the binary, wrapping the
file in a minimal main config inside a private prefix, and ``nginx -t``.

``wsio nginx-config --check`` uses it, and so do the tests that run a real
nginx: every path (pid, logs, temp files) stays inside the prefix, so no
system config or root-owned folder is involved.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path


def find_nginx() -> str | None:
    """The nginx executable (it lives in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def nginx_build(nginx: str) -> tuple[tuple[int, ...], str]:
    """nginx's version and its ``nginx -V`` text (configure arguments)."""
    result = subprocess.run([nginx, "-V"], capture_output=True, text=True, timeout=15)
    text = result.stderr + result.stdout
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", text)
    version = tuple(int(n) for n in found.groups()) if found else (0, 0, 0)
    return version, text


def stream_module_path(build: str) -> str | None:
    """Where the dynamic stream module is, when nginx was built with
    ``--with-stream=dynamic`` (Debian), else None (built in, or absent)."""
    if "--with-stream=dynamic" not in build:
        return None
    found = re.search(r"--modules-path=(\S+)", build)
    directory = found.group(1) if found else "/usr/lib/nginx/modules"
    return os.path.join(directory, "ngx_stream_module.so")


def harness_config(
    site: Path, mode: str, prefix: Path, build: str = "", as_root: bool | None = None
) -> str:
    """A minimal main nginx.conf that includes the generated ``site`` file,
    with every path (pid, logs, temp files) inside ``prefix``: what
    ``--check`` runs ``nginx -t`` on, and what the tests run nginx with.

    :param build: ``nginx -V`` output, to load the stream module if it is
        dynamic.
    :param as_root: keep the workers as root (default: when running as
        root), so they can read files in private temp folders; a real
        install runs them as www-data.
    """
    if as_root is None:
        as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    lines = []
    module = stream_module_path(build) if mode == "stream" else None
    if module:
        lines.append(f"load_module {module};")
    if as_root:
        lines.append("user root;")
    lines += [
        "daemon off;",
        "worker_processes 1;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'error.log'} info;",
        "events { worker_connections 1024; }",
    ]
    if mode == "stream":
        lines.append(f"include {site};")
    else:
        tmp = prefix / "tmp"
        lines += [
            "http {",
            "    default_type application/octet-stream;",
            "    types { text/html html; text/plain txt; text/css css; "
            "application/javascript js; }",
            f"    access_log {prefix / 'access.log'};",
        ]
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            lines.append(f"    {kind}_temp_path {tmp / kind};")
        lines += [f"    include {site};", "}"]
    return "\n".join(lines) + "\n"


def nginx_command(nginx: str, prefix: Path, version: tuple[int, ...]) -> list[str]:
    """``nginx -p PREFIX -c PREFIX/nginx.conf`` (with ``-e`` where nginx has it,
    so even the log opened before the config is read stays in the prefix)."""
    command = [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
    if version >= (1, 19, 5):
        command += ["-e", str(prefix / "error.log")]
    return command


def prepare_prefix(prefix: Path, text: str, mode: str, nginx: str) -> list[str]:
    """Write ``text`` and its harness into ``prefix``; return the nginx
    command line that runs them (add ``-t`` to only test)."""
    version, build = nginx_build(nginx)
    prefix.mkdir(parents=True, exist_ok=True)
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    site = prefix / "site.conf"
    site.write_text(text)
    (prefix / "nginx.conf").write_text(harness_config(site, mode, prefix, build))
    return nginx_command(nginx, prefix, version)


def check_with_nginx(text: str, mode: str, nginx: str, shown_as: str) -> tuple[bool, str]:
    """Run ``nginx -t`` on ``text`` in a throwaway prefix.

    :param shown_as: how to name the generated file in nginx's messages.
    :returns: whether the test passed, and nginx's output.
    """
    with tempfile.TemporaryDirectory(prefix="wsio-nginx-") as tmp:
        prefix = Path(tmp)
        command = prepare_prefix(prefix, text, mode, nginx)
        try:
            result = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            return False, "nginx -t did not finish within 60 s"
        output = (result.stderr + result.stdout).strip()
        output = output.replace(str(prefix / "site.conf"), shown_as)
        output = output.replace(str(prefix / "nginx.conf"), "<test harness nginx.conf>")
        return result.returncode == 0, output
