"""Tests of each client API, one folder an API."""
