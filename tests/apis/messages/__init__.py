"""Tests of the Anthropic Messages API surface."""
