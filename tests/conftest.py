"""Fixtures shared by every test area; each area keeps its own in its conftest."""

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.s3"]
