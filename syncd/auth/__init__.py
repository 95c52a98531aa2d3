"""Credentials: password sources and authenticators."""
