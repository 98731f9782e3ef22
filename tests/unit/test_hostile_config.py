"""What a careless or hostile site file or payload can make the ingestor do, bounded (issue 26):
service names as device ids, webhooks that reach for secrets or other schemes, an expression
that formats a payload string, and made-up device ids by the thousand."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from devices import SiteConfigError, parse_site
from devices.expressions import Expression, ExpressionError
from devices.onboarding import add_device
from devices.site import Webhook, default_site_text, redacted_url
from ingest.evaluation.alerts.delivery import public_address
from ingest.observability.counters import RejectionLog, Stats
from ingest.reading import Reason, Rejected
from ingest.settings import IngestSettings

# Made per run: no secret-looking literal in the repository.
TOKEN = secrets.token_hex(12)


@pytest.mark.parametrize("device_id", ["kera-ingest", "kera-sim", "kera-grafana"])
def test_a_service_name_is_no_device_id(device_id: str, tmp_path: Path) -> None:
    with pytest.raises(SiteConfigError, match="belong to the pipeline's own services"):
        parse_site(f"site: kera\ndevices:\n  - {{id: {device_id}, kind: occupancy, space: a}}\n")
    site = tmp_path / "site.yaml"
    site.write_text(default_site_text())
    with pytest.raises(SiteConfigError, match="kera-ingest"):
        add_device(site, {"id": "kera-ingest", "kind": "occupancy", "space": "hall"})
    assert site.read_text() == default_site_text()


def _site_with_hook(hook: str) -> str:
    return f"site: kera\ndevices: []\nalerts:\n  webhooks:\n    - {hook}\n"


@pytest.mark.parametrize(
    ("hook", "words"),
    [
        # A site file sent the ingestor's InfluxDB token out before: only listed names expand.
        ('{url: "https://hooks.example/k?t=${KERA_INFLUX_TOKEN}"}', "not in the hook's `env`"),
        (
            '{url: "https://hooks.example/k?t=${KERA_INFLUX_TOKEN}", env: [KERA_INFLUX_TOKEN]}',
            "pipeline's own credentials",
        ),
        ('{url: "https://x.example/${DB_PASSWORD}", env: [DB_PASSWORD]}', "own credentials"),
        ('{url: "file:///etc/passwd"}', "only http:// and https://"),
        ('{url: "gopher://hooks.example/"}', "only http:// and https://"),
        ('{url: "hooks.example/kera"}', "only http:// and https://"),
    ],
)
def test_a_webhook_is_bounded_when_the_file_loads(hook: str, words: str) -> None:
    with pytest.raises(SiteConfigError, match=words):
        parse_site(_site_with_hook(hook))


def test_a_webhook_expands_only_its_listed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERA_ALERT_TOKEN", TOKEN)
    hook = Webhook(
        url="https://hooks.example/kera?token=${KERA_ALERT_TOKEN}", env=("KERA_ALERT_TOKEN",)
    )
    assert hook.resolved_url() == f"https://hooks.example/kera?token={TOKEN}"
    assert TOKEN not in hook.shown()
    monkeypatch.delenv("KERA_ALERT_TOKEN")
    with pytest.raises(KeyError):
        hook.resolved_url()


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/{token}",
        "https://user:{token}@hooks.example:8443/p?token={token}#{token}",
        "http://hooks.example?token={token}",
    ],
)
def test_a_webhook_url_in_a_log_shows_no_secret(url: str) -> None:
    url = url.format(token=TOKEN)
    shown = redacted_url(url)
    assert TOKEN not in shown
    assert shown.startswith(url.split("://", maxsplit=1)[0] + "://")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),
        ("0.0.0.0", False),
        ("not an address", False),
    ],
)
def test_which_addresses_a_webhook_reaches_by_default(address: str, public: bool) -> None:
    assert public_address(address) is public


def test_an_expression_cannot_format_a_payload_string() -> None:
    """`x % 360` with a payload string as x built a 500 MB string before."""
    expr = Expression("x % 360")
    assert expr.evaluate({"x": 725}) == 5
    started = time.monotonic()
    with pytest.raises(ExpressionError, match="arithmetic"):
        expr.evaluate({"x": "%0500000000d"})
    assert time.monotonic() - started < 1.0
    with pytest.raises(ExpressionError):
        Expression("x * 100").evaluate({"x": "a" * 5000})  # over simpleeval's string limit


def test_made_up_device_ids_cost_one_counter() -> None:
    """50,000 unknown ids of 2,000 characters were 250 MB of counters, never released."""
    stats = Stats()
    log = RejectionLog(stats, quiet=True, known=frozenset({"em-main"}))
    for i in range(50_000):
        log.record(Rejected(Reason.UNKNOWN_DEVICE, "not registered", f"{i:02000d}"), "t")
    log.record(Rejected(Reason.BAD_JSON, "bad", "em-main"), "t")
    assert stats.rejected_by_device == {"unknown": 50_000, "em-main": 1}


def test_a_password_in_the_url_and_a_token_are_refused_at_start() -> None:
    """Both reached aiohttp as two Authorization headers: an uncaught error at the first write."""
    with pytest.raises(ValidationError, match="not both"):
        IngestSettings(influx_url=f"http://kera:{TOKEN}@127.0.0.1:8086", influx_token=TOKEN)
