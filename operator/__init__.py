"""Lockgate operator."""
