"""basic_app's handlers and routes, plus lifecycle lines on stdout, for the
wsio serve tests (``--app serve_app:app``): a stopping worker's
on_disconnect and on_finish calls are visible in its output."""

from basic_app import app  # noqa: F401  (also registers the test handlers)

from webpy_socketio.events import on_disconnect, on_finish


@on_disconnect
def report_disconnect(request, socket, context):
    print(f"EVENT disconnect {context.get('name')} {socket.disconnect_reason}", flush=True)


@on_finish
def report_finish(request, socket, context):
    print(f"EVENT finish {context.get('name')}", flush=True)
