"""Fixtures live in llamacpp_fixtures.py, a uniquely named module the tests import from
(every plugin has a conftest.py, so `from conftest import ...` would be ambiguous)."""

from llamacpp_fixtures import *  # noqa: F401,F403
