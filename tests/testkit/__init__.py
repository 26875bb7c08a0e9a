"""Test machinery shared by the suites: locating real binaries and running real components."""
