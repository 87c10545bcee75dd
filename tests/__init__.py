"""Tests of provision; also makes `tests.lab` and `tests.standin` importable as packages."""
