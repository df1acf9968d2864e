"""Fixtures live in upstream_fixtures.py, a uniquely named module the tests import from
(every plugin has a conftest.py, so `from conftest import ...` would be ambiguous)."""

from upstream_fixtures import *  # noqa: F401,F403
