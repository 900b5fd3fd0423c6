"""Kizuna dashboard package."""
