"""The console: server-rendered pages at `/` for marketers and ops, a thin layer over the API.

Pages render with Jinja2 and enhance with htmx; charts use Chart.js. Both are vendored under
`static/vendor` (see `scripts/vendor-console-assets.sh`), so the console works offline and needs
no build step. All data comes from the service's own `/v1` API, called in-process with the
user's key (`api_client.py`), so the console's access policy is the API's.
"""
