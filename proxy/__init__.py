"""Lockgate proxy."""
