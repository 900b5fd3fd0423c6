"""Kizuna devices package."""
