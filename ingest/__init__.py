"""Kizuna ingest package."""
