"""What the HTTP layers (`orchestrator.api` and the top-level `webhooks` package) share: the
request dependencies and the access policy. Both import it downward; it imports neither."""
