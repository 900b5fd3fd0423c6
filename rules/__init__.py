"""Kizuna rules package."""
