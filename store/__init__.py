"""Kizuna store package."""
