"""Kizuna api package."""
