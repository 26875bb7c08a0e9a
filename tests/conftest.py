"""Fixtures that start real components live in tests/testkit; they are imported here
so every test module can use them."""
