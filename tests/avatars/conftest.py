"""Fixtures of the avatar tests: the live tests' avatars with real assets (for the start
tests against a real worker, API and admin)."""

from tests.live.conftest import live_assets, make_avatar  # noqa: F401 - fixtures
