"""Workflows: formats, templating, validation and UI-to-API conversion."""
