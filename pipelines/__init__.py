"""Dagster code location: record files, the dataset manifest, its checks, sensor and schedule."""
