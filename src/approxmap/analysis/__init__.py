"""Analyses: pure functions from a model/campaign store to tables (layers, profile, stats)."""
