"""Kizuna app package."""
