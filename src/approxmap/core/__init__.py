"""The core layer: data, sites and targets, error models, scenarios, records, statistics.

Nothing here runs campaigns or writes files; every other layer builds on it.
"""
