"""Package layout for setuptools.

The metadata lives in ``pyproject.toml``. This file only maps the top-level
``cli/`` and ``project_template/`` folders into the ``webpy_socketio``
package, so that an installed copy has ``webpy_socketio.cli`` and never a
top-level ``cli`` module.
"""

from setuptools import setup

setup(
    packages=[
        "webpy_socketio",
        "webpy_socketio._engine",
        "webpy_socketio._websocket",
        "webpy_socketio.templates",
        "webpy_socketio.static",
        "webpy_socketio.cli",
        "webpy_socketio.cli.dev",
        "webpy_socketio.cli.templates",
        "webpy_socketio.project_template",
        "webpy_socketio.project_template.hooks",
    ],
    package_dir={
        "webpy_socketio.cli": "cli",
        "webpy_socketio.project_template": "project_template",
    },
    package_data={
        "webpy_socketio": ["templates/*", "static/*", "py.typed"],
        "webpy_socketio.cli": ["templates/*"],
        "webpy_socketio.project_template": ["**/*", "**/.*"],
    },
    include_package_data=False,
)
