"""Kizuna simulator package."""
