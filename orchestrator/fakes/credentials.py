"""The bundled fakes' mount points and the identifiers that are not secrets.

Kept apart from the fakes' FastAPI apps: the channel configuration needs these values in every
worker, and a worker must not import a web framework to read two strings. The fake Twilio's
auth token is no constant: it signs the callbacks and inbound messages our webhook trusts, so
it is generated per deployment (`orchestrator/auth/service_secrets.py`). The fake SendGrid's
API key stays a constant: it only lets a caller queue mail that the fake records and never
delivers, and the record is behind the API-key policy (`orchestrator/fakes/mounting.py`).
"""

FAKE_TWILIO_PATH = "/_fake/twilio"
FAKE_SENDGRID_PATH = "/_fake/sendgrid"
FAKE_TWILIO_ACCOUNT_SID = "AC" + "0" * 32
FAKE_SENDGRID_API_KEY = "SG.fake-sendgrid-api-key"
