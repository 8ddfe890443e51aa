"""Marketer tooling: check, simulate, preview and test journeys and templates offline.

Nothing here opens a database or calls a provider. The tools reuse the engine's pure pieces
(`journeys.loader`, `engine.interpreter`, `engine.messages`, `templating`) so what they say is
what the engine would do.
"""
