"""Lockgate cli."""
