"""Tests of the web console in a real browser (a package: its conftest must not shadow
the suite's own ``conftest`` module, which other tests import)."""
