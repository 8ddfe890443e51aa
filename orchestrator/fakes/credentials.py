"""The bundled fakes' default credentials and mount points.

Kept apart from the fakes' FastAPI apps: the channel configuration needs these values in every
worker, and a worker must not import a web framework to read two strings.
"""

FAKE_TWILIO_PATH = "/_fake/twilio"
FAKE_SENDGRID_PATH = "/_fake/sendgrid"
FAKE_TWILIO_ACCOUNT_SID = "AC" + "0" * 32
FAKE_TWILIO_AUTH_TOKEN = "fake-twilio-auth-token"
FAKE_SENDGRID_API_KEY = "SG.fake-sendgrid-api-key"
