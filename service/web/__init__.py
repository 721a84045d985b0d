"""The HTTP surface: the JSON API, the pages, health and metrics."""
