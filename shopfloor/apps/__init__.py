"""Scenario apps built on the platform: one package per scenario (inspection, maintenance, ...)."""
