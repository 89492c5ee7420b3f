"""Extraction: one module per dataset, and the runner that drives them for every user."""
