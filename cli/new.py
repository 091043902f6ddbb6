"""``wsio new NAME``: create a project from the bundled cookiecutter template.

The template (``webpy_socketio.project_template``) is rendered with
cookiecutter's Python API into a private staging folder next to the target,
then moved into place in one rename, so a failure at any point leaves
nothing half-written behind. cookiecutter is imported inside the command:
``wsio --help`` must not pay for it.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import keyword
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import click

#: The template variants, the first being the default.
VARIANTS = ("chat", "minimal")

#: Modules a project name must not shadow besides the standard library: the
#: ones a project imports (web.py is ``web``) and the ones ``wsio`` runs on.
DEPENDENCY_MODULES = frozenset(
    {
        "web",
        "gevent",
        "greenlet",
        "socketio",
        "engineio",
        "simple_websocket",
        "geventwebsocket",
        "mako",
        "click",
        "cookiecutter",
        "jinja2",
        "watchdog",
        "redis",
        "multipart",
        "cheroot",
        "pytest",
        "webpy_socketio",
    }
)


#: The project's own modules (and its test package): a project named after
#: one of them would be two things under one import name.
PROJECT_MODULES = frozenset({"app", "events", "settings", "tests", "conftest"})

#: The requirement the template writes, right once webpy-socketio is on an
#: index (PyPI).
INDEX_REQUIREMENT = "webpy-socketio>=1.0,<2"


def _suggest(name: str) -> str:
    """A usable name close to ``name``, for the error message."""
    candidate = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower()
    if candidate and candidate[0].isdigit():
        candidate = "project_" + candidate
    if not candidate:
        return "mychat"
    if name_problem(candidate, suggest=False) is None:
        return candidate
    candidate += "_app"
    return candidate if name_problem(candidate, suggest=False) is None else "mychat"


def name_problem(name: str, suggest: bool = True) -> str | None:
    """Why ``name`` cannot be a project name, with the fix; None if it can.

    A project name is also its folder's name and the package name it gets
    if it is ever packaged, so it must be an ASCII Python identifier, and it
    must not hide a module the project or Python itself imports.
    """
    hint = f" (for example {_suggest(name)!r})" if suggest else ""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return (
            f"{name!r} is not a valid Python identifier: use ASCII letters, digits and "
            f"underscores, not starting with a digit{hint}."
        )
    if keyword.iskeyword(name):
        return f"{name!r} is a Python keyword; choose another name{hint}."
    if name in sys.stdlib_module_names or name.lower() in sys.stdlib_module_names:
        return (
            f"{name!r} would shadow the standard library module {name.lower()!r}; "
            f"choose another name{hint}."
        )
    if name.lower() in PROJECT_MODULES:
        own = ", ".join(sorted(PROJECT_MODULES - {"conftest"}))
        return (
            f"{name!r} is the name of one of the project's own modules ({own}); "
            f"choose another name{hint}."
        )
    if name.lower() in DEPENDENCY_MODULES:
        return (
            f"{name!r} would shadow the {name.lower()!r} module the project depends on; "
            f"choose another name{hint}."
        )
    # any other installed top-level module (find_spec does not import it)
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a module already imported oddly, such as __main__
        found = True
    if found:
        return f"{name!r} would shadow the installed module {name!r}; choose another name{hint}."
    return None


def _check_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise click.BadParameter(problem, ctx, param)
    return value


def template_dir() -> Path:
    """The bundled template's folder (the one holding ``cookiecutter.json``)."""
    from importlib import resources

    return Path(str(resources.files("webpy_socketio.project_template")))


def installed_requirement() -> tuple[str, str | None]:
    """How the running webpy-socketio was installed, as a requirement line
    for a new project, and a comment saying where it comes from (None when
    it came from an index, where the plain requirement works).

    pip records a direct install (a folder, a VCS URL, an archive) in the
    distribution's ``direct_url.json`` (PEP 610): a project made from a
    clone then installs webpy-socketio from that same clone.
    """
    from importlib import metadata

    found = None
    # a build leftover (webpy_socketio.egg-info in a checkout) has no
    # INSTALLER file: the installed distribution is the one pip recorded
    for dist in metadata.distributions(name="webpy-socketio"):
        if dist.read_text("INSTALLER") is not None:
            found = dist
            break
    if found is None:
        return INDEX_REQUIREMENT, None
    try:
        direct = json.loads(found.read_text("direct_url.json") or "null")
    except ValueError:
        direct = None
    if not isinstance(direct, dict) or not isinstance(direct.get("url"), str):
        return INDEX_REQUIREMENT, None
    url = direct["url"]
    vcs = direct.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs"):
        commit = vcs.get("commit_id") or vcs.get("requested_revision")
        line = f"webpy-socketio @ {vcs['vcs']}+{url}" + (f"@{commit}" if commit else "")
        return line, "from a version-control URL"
    if url.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        path = Path(unquote(urlsplit(url).path))
        if not path.exists():
            return INDEX_REQUIREMENT, None  # installed from a file that is gone
        what = "a local folder" if "dir_info" in direct else "a local archive"
        return f"webpy-socketio @ {url}", f"from {what}"
    return f"webpy-socketio @ {url}", "from a URL"


def _write_requirement(project: Path) -> None:
    line, source = installed_requirement()
    if source is None:
        return
    path = project / "requirements.txt"
    text = path.read_text()
    note = (
        f"# webpy-socketio as `wsio new` found it installed ({source}); once it is\n"
        f"# installed from an index (PyPI), this line can be: {INDEX_REQUIREMENT}\n"
    )
    path.write_text(text.replace(INDEX_REQUIREMENT + "\n", note + line + "\n", 1))


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _make_staging(parent: Path) -> Path:
    """A private folder inside ``parent``, on the same file system, so the
    finished project moves into place with one rename."""
    try:
        return Path(tempfile.mkdtemp(prefix=".wsio-new-", dir=parent))
    except PermissionError:
        raise click.ClickException(
            f"Cannot write to {parent}: permission denied. Choose a folder you can write to "
            "with --directory."
        ) from None
    except OSError as exc:
        raise click.ClickException(
            f"Cannot write to {parent}: {exc.strerror}. Choose another folder with --directory."
        ) from None


def render(
    name: str,
    parent: Path,
    variant: str = VARIANTS[0],
    port: int = 8000,
    force: bool = False,
) -> Path:
    """Render the template as ``parent/name`` and return that path.

    :param name: the project name, already checked with :func:`name_problem`.
    :param parent: an existing folder to create the project in.
    :param variant: ``"chat"`` (a working chat room) or ``"minimal"``.
    :param port: the port written to the project's settings.
    :param force: write into an existing, non-empty ``parent/name``,
        replacing the files the template has and keeping the others.
    :raises click.ClickException: for a target that is in the way, a folder
        that cannot be written, or a template that fails to render; nothing
        is left behind.
    """
    from cookiecutter.exceptions import CookiecutterException
    from cookiecutter.main import cookiecutter

    target = parent / name
    if target.exists() and not target.is_dir():
        raise click.ClickException(
            f"{target} exists and is not a folder; remove it or choose another name."
        )
    if target.exists() and not force and not _is_empty_dir(target):
        raise click.ClickException(
            f"{target} already exists and is not empty; choose another name, or pass --force "
            "to write the project into it (files of the same name are replaced)."
        )
    staging = _make_staging(parent)
    try:
        # a private cookiecutter config: no ~/.cookiecutterrc defaults leak
        # into the project, and the replay file lands here, not in $HOME
        config = staging / "cookiecutterrc"
        config.write_text(
            json.dumps(
                {
                    "replay_dir": str(staging / "replay"),
                    "cookiecutters_dir": str(staging / "cookiecutters"),
                }
            )
        )
        out = staging / "out"
        try:
            rendered = cookiecutter(
                str(template_dir()),
                no_input=True,
                extra_context={"project_name": name, "variant": variant, "port": str(port)},
                output_dir=str(out),
                config_file=str(config),
            )
        except CookiecutterException as exc:
            raise click.ClickException(f"The template failed to render: {exc}") from None
        _write_requirement(Path(rendered))
        if target.is_dir():
            shutil.copytree(rendered, target, dirs_exist_ok=True)
        else:
            os.rename(rendered, target)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise click.ClickException(
                f"Cannot write to {exc.filename or parent}: {exc.strerror}. Choose a folder you "
                "can write to with --directory."
            ) from None
        raise click.ClickException(f"Could not create {target}: {exc}") from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    return target


@click.command(short_help="Create a project: a web.py app with realtime websockets.")
@click.argument("name", callback=_check_name)
@click.option(
    "--directory",
    "-d",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Folder to create the project folder in.",
)
@click.option(
    "--template",
    "-t",
    "variant",
    type=click.Choice(VARIANTS),
    default=VARIANTS[0],
    show_default=True,
    help="chat: a working chat room; minimal: one page and an echo handler.",
)
@click.option(
    "--port",
    "-p",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="Port written to the project's settings.py (SOCKETIO_PORT).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into an existing, non-empty folder, replacing files of the same name.",
)
@click.option(
    "--client/--no-client",
    default=True,
    show_default=True,
    help="Put the official socket.io client in static/ with npm, when npm is installed "
    "(as 'wsio client' does), so that pages work offline.",
)
def new(name: str, directory: Path, variant: str, port: int, force: bool, client: bool) -> None:
    """Create the project NAME in ./NAME: a web.py app with realtime
    websockets, its settings, templates, static files and tests.

    \b
    wsio new mychat
    cd mychat
    wsio runserver
    """
    target = render(name, directory, variant=variant, port=port, force=force)
    shown = os.path.relpath(target) if not os.path.isabs(directory) else str(target)
    click.echo(f"Created {variant} project {name!r} in {shown}")
    if client:
        from .client import fetch_for_new_project

        click.echo(fetch_for_new_project(target))
    click.echo(f"Next: cd {shown} && wsio runserver   (then open http://127.0.0.1:{port}/)")
