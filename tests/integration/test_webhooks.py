"""Alert webhooks against real HTTP servers on loopback (issue 26): a site file's URL cannot
reach the services beside the ingestor, follow a redirect, leak its token into the log, or hold
up the other hooks."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable

import pytest

from devices.site import Alerts, Webhook
from ingest.evaluation.alerts.delivery import AlertDelivery
from ingest.evaluation.alerts.engine import Transition
from tests.helpers import (
    Collected,
    HookReceiver,
    Published,
    hook_receiver,
    http_server,
    wait_until,
)

# Made per run: no secret-looking literal in the repository.
TOKEN = secrets.token_urlsafe(16)


def _transition(device: str = "bin-glass-1") -> Transition:
    return Transition("bin_fill", device, True, "critical", 97.0, int(time.time() * 1000), "full")


async def _deliver(
    hooks: tuple[Webhook, ...], until: Callable[[AlertDelivery], bool], retries: int = 0
) -> AlertDelivery:
    delivery = AlertDelivery(
        "kera", Alerts(webhooks=hooks, retries=retries), Published(), Collected()
    )
    task = asyncio.create_task(delivery.run())
    try:
        delivery.notify(_transition())
        await wait_until(lambda: until(delivery), timeout=20)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return delivery


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[HookReceiver, str]]:
    async with hook_receiver() as (r, url):
        yield r, url


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_hook_to_loopback_is_refused_unless_allowed(
    receiver: tuple[HookReceiver, str], host: str, caplog: pytest.LogCaptureFixture
) -> None:
    r, url = receiver
    target = url.replace("127.0.0.1", host) + "/hook"
    refused = await _deliver((Webhook(url=target),), lambda d: d.failed == 1)
    assert refused.delivered == 0
    assert r.calls == []
    assert "refused" in caplog.text
    assert "retry" not in caplog.text
    allowed = await _deliver((Webhook(url=target, allow_private=True),), lambda d: d.delivered == 1)
    assert allowed.failed == 0
    assert len(r.calls) == 1


async def test_a_redirect_is_not_followed(receiver: tuple[HookReceiver, str]) -> None:
    """A 307 keeps the method and the body: followed, it would carry the alert (and a token in
    its URL) wherever the receiver pointed, an internal address included."""
    inner, inner_url = receiver
    redirecting = HookReceiver(status=307, location=f"{inner_url}/hook")
    async with hook_receiver(redirecting) as (_, url):
        hook = Webhook(url=f"{url}/hook", allow_private=True)
        d = await _deliver((hook,), lambda d: d.failed == 1, retries=3)
    assert len(redirecting.calls) == 1  # refused at once, not retried
    assert inner.calls == []
    assert d.delivered == 0


async def test_a_hanging_hook_delays_only_itself(receiver: tuple[HookReceiver, str]) -> None:
    fast, fast_url = receiver
    slow = HookReceiver(delay_s=6)
    async with hook_receiver(slow) as (_, slow_url):
        hooks = (
            Webhook(url=f"{slow_url}/hook", allow_private=True, timeout_s=5),
            Webhook(url=f"{fast_url}/hook", allow_private=True),
        )
        started = time.monotonic()
        await _deliver(hooks, lambda d: d.delivered == 1)
    assert fast.calls[0] - started < 2.0
    assert len(slow.calls) == 1


async def test_a_token_in_the_url_never_reaches_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KERA_ALERT_TOKEN", TOKEN)
    failing = HookReceiver(status=500)
    caplog.set_level(logging.DEBUG, logger="ingest")
    async with http_server(f"/hooks/{TOKEN}", failing.handle) as url:
        hook = Webhook(
            url=f"{url}/hooks/{TOKEN}?token=${{KERA_ALERT_TOKEN}}",
            env=("KERA_ALERT_TOKEN",),
            allow_private=True,
        )
        await _deliver((hook,), lambda d: d.failed == 1, retries=1)
    assert len(failing.calls) == 2
    assert "gave up" in caplog.text
    assert TOKEN not in caplog.text
