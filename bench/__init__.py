"""Kizuna bench package."""
