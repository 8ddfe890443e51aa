# The orchestrator's one image: `orchestrator api`, `orchestrator worker`, `orchestrator migrate`
# (see docker-compose.yml). Journeys and templates are baked in from this checkout.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The code first, installed as a package (migrations included); the marketers' files after,
# so editing a journey or a template does not reinstall anything.
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY webhooks ./webhooks
RUN pip install . && rm -rf build orchestrator webhooks

COPY journeys ./journeys
COPY templates ./templates
COPY policies ./policies

# An installed package no longer sits next to journeys/, templates/ and policies/: say where
# they are (a caps file not found would mean no frequency caps at all).
ENV ORCHESTRATOR_JOURNEYS_DIR=/app/journeys \
    ORCHESTRATOR_TEMPLATES_DIR=/app/templates \
    ORCHESTRATOR_FREQUENCY_CAPS_FILE=/app/policies/frequency.yaml \
    ORCHESTRATOR_AUTO_REPLIES_FILE=/app/templates/auto-replies.yaml \
    ORCHESTRATOR_HOST=0.0.0.0

RUN useradd --create-home --uid 10001 orchestrator
USER orchestrator

EXPOSE 8000
CMD ["orchestrator", "api", "--host", "0.0.0.0", "--port", "8000"]
