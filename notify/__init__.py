"""Kizuna notify package."""
