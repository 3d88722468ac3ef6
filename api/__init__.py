"""Lockgate api."""
