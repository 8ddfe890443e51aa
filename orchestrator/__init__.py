"""orchestrator: an omnichannel messaging orchestrator.

The engine (this package) knows nothing of HTTP frameworks; `orchestrator.api` and the
top-level `webhooks` package are thin FastAPI layers over it.
"""
