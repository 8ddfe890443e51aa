"""A worker process never loads the web stack: it needs the engine, the channels and the
database, not FastAPI (DESIGN: the engine knows nothing of HTTP frameworks)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

BUILD_A_WORKER = textwrap.dedent("""
    import asyncio, sys
    from orchestrator.config import Settings, get_settings
    from orchestrator.engine.loop import WorkerLoop
    from orchestrator.startup import build_runtime
    import orchestrator.cli  # the `orchestrator worker` entry point, as the process starts it

    async def main():
        settings = get_settings()  # from the environment, as `orchestrator worker` reads it
        runtime = await build_runtime(settings)
        WorkerLoop(runtime)
        print(type(runtime.channels.for_channel("sms")).__name__, settings.uses_fake_twilio, file=sys.stderr)
        await runtime.aclose()

    asyncio.run(main())
    web = sorted(m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette", "uvicorn"))
    print(",".join(web))
""")


@pytest.mark.parametrize(
    "providers, fake",
    [
        ({}, True),  # the default: Twilio and SendGrid adapters talking to the bundled fakes
        (
            {
                "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
                "TWILIO_AUTH_TOKEN": "secret",
                "TWILIO_FROM_NUMBER": "+15005550006",
                "SENDGRID_API_KEY": "SG.real",
            },
            False,
        ),
    ],
    ids=["fake-providers", "real-providers"],
)
def test_a_worker_runtime_does_not_import_fastapi(tmp_path, providers, fake):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "TWILIO_", "SENDGRID_"))}
    env.update(providers, DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}")
    result = subprocess.run(
        [sys.executable, "-c", BUILD_A_WORKER], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"TwilioSmsAdapter {fake}" in result.stderr  # the configuration this case means to test
    assert result.stdout.strip() == "", f"a worker imported the web stack: {result.stdout.strip()}"
