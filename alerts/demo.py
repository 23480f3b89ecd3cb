"""``alerts demo``: the service plus a stream of simulated training runs, so a newcomer sees runs
arrive and notifications go out within a minute."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time

import httpx

from alerts.config.settings import AlertsSettings

log = logging.getLogger("alerts.demo")

DEMO_PROJECT = "demo"
SCENARIOS = ["healthy", "diverging", "low-accuracy", "overfitting", "crashing"]


def run_demo(settings: AlertsSettings, *, host: str | None, port: int | None, once: bool) -> int:
    import uvicorn

    from alerts.api.app import create_app
    from alerts.cli import apply_overrides
    from alerts.keys import create_key
    from alerts.service import Service
    from alerts.storage import open_store

    apply_overrides(settings, host, port)

    async def make_key() -> str:
        store = open_store(settings.storage.url)
        await store.open()
        try:
            return (await create_key(store, project=DEMO_PROJECT, admin=False))[1]
        finally:
            await store.close()

    key = asyncio.run(make_key())
    server = uvicorn.Server(uvicorn.Config(create_app(Service(settings)), host=settings.server.host,
                                           port=settings.server.port, log_level="warning", lifespan="on"))
    base_url = f"http://{settings.server.host}:{settings.server.port}"
    failures: list[str] = []
    streamer = threading.Thread(target=_stream, args=(base_url, key, server, once, failures), daemon=True)
    streamer.start()
    server.run()
    return 1 if failures or not server.started else 0


def _stream(base_url: str, key: str, server: object, once: bool, failures: list[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    # Printed, not logged: the key is for the person at this terminal, like `alerts keys create` prints it.
    print(_dashboard_banner(base_url, key), flush=True)
    log.warning("demo: streaming %d simulated runs to %s (project %r)", len(SCENARIOS), base_url, DEMO_PROJECT)
    env = {**os.environ, "RUNWATCH_BASE_URL": base_url, "RUNWATCH_API_KEY": key,
           "RUNWATCH_PROJECT": DEMO_PROJECT}
    env.setdefault("RUNWATCH_DIR", os.path.join(os.getcwd(), ".alerts", "demo-runs"))
    processes = [subprocess.Popen([sys.executable, "-m", "alerts.demo_stream", scenario], env=env)
                 for scenario in SCENARIOS]
    for scenario, process in zip(SCENARIOS, processes, strict=True):
        code = process.wait()
        expected = 1 if scenario == "crashing" else 0
        if code != expected:
            failures.append(f"{scenario} exited {code}")
    log.warning("demo: all runs ended; look at them on the dashboard: %s/projects/%s", base_url, DEMO_PROJECT)
    if once:
        time.sleep(2.0)  # let the last notifications go out
        server.should_exit = True  # type: ignore[attr-defined]


def _dashboard_banner(base_url: str, key: str) -> str:
    return (f"\nDashboard: {base_url}/projects/{DEMO_PROJECT}\n"
            f"Log in with this API key (project {DEMO_PROJECT!r}): {key}\n")
