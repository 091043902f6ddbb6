"""The built wheel: installs into a fresh venv, imports from elsewhere,
carries its data files, and has no top-level ``cli`` module."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from support import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    (found,) = out.glob("webpy_socketio-*.whl")
    return found


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "webpy_socketio/templates/socketio_scripts.html" in names
    assert "webpy_socketio/static/wsio.js" in names
    assert "webpy_socketio/cli/main.py" in names
    assert "webpy_socketio/project_template/__init__.py" in names
    assert not [n for n in names if n.startswith(("cli/", "project_template/", "tests/"))]
    top_level = [n for n in names if n.endswith("top_level.txt")]
    if top_level:
        assert zipfile.ZipFile(wheel).read(top_level[0]).decode().split() == ["webpy_socketio"]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "wsio = webpy_socketio.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_wheel_installs_and_imports_from_another_directory(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300
    )
    # the dependencies come from the test venv, added after the fresh venv's own
    # site-packages (a .pth entry is only a path: the editable install's finder
    # there is not activated, so the wheel is what gets imported)
    site = Path(sysconfig.get_paths()["purelib"])
    fresh_site = next((env_dir / "lib").glob("python3*/site-packages"))
    (fresh_site / "zz_test_deps.pth").write_text(str(site) + "\n")
    code = (
        "import importlib.util, webpy_socketio, webpy_socketio.cli.main as m;"
        "from importlib import resources;"
        "print(webpy_socketio.__file__);"
        "print(importlib.util.find_spec('cli'));"
        "print(resources.files('webpy_socketio').joinpath('static', 'wsio.js').is_file())"
    )
    result = subprocess.run(
        [python, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    location, cli_spec, has_script = result.stdout.split()
    assert location.startswith(str(env_dir))
    assert cli_spec == "None"
    assert has_script == "True"
    wsio = env_dir / "bin" / "wsio"
    result = subprocess.run(
        [wsio, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.startswith("wsio, version "), result.stderr
    # the template ships in the wheel, dotfiles included, and renders from it
    result = subprocess.run(
        [wsio, "new", "smoke"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for name in ("app.py", "events.py", "settings.py", ".gitignore", "templates"):
        assert (tmp_path / "smoke" / name).exists(), name
