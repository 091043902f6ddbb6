"""Test setup. gevent patches the standard library before any test
imports web.py, as app.py does when it runs."""

from gevent import monkey

monkey.patch_all()
