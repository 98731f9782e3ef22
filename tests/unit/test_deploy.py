"""The deployment files: compose.yaml against the Compose specification's JSON schema, pinned
images, every variable in .env.example without a real secret, a non-root multi-stage image and
a broker that refuses anonymous clients."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).parent.parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_matches_the_compose_specification() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    errors = sorted(Draft202012Validator(schema).iter_errors(COMPOSE), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_every_image_is_pinned() -> None:
    for name, service in COMPOSE["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo, name
        assert tag, name
        assert tag != "latest", name
        assert re.search(r"\d", tag), f"{name}: {image} is not a version"


def test_env_example_lists_every_variable_and_no_secret() -> None:
    text = (ROOT / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert used <= set(example), used - set(example)
    for key, value in example.items():
        if re.search(r"PASSWORD|TOKEN|SECRET", key):
            assert value in ("", "change-me"), key


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2
    assert all(re.search(r":\d", s) for s in stages)
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user
    assert user[-1] not in ("root", "0")


def test_broker_refuses_anonymous_clients() -> None:
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    settings = dict(line.split(None, 1) for line in conf if line and not line.startswith("#"))
    assert settings["allow_anonymous"] == "false"
    assert "password_file" in settings
    assert "acl_file" in settings


def _ours() -> dict[str, dict[str, Any]]:
    """The services that run the project's own image."""
    return {
        name: s
        for name, s in COMPOSE["services"].items()
        if s["image"].startswith("kera-pipeline:")
    }


def _ingestors() -> dict[str, dict[str, Any]]:
    """Services running the image's default command, `kera-ingest run`."""
    return {name: s for name, s in _ours().items() if "command" not in s}


def test_every_ingestor_has_its_own_spool_and_session() -> None:
    """A spool is flock()ed by one process: two ingestors on one folder left the second
    restarting forever (issue 26). Each ingestor has its own volume at the spool folder and its
    own client id (its persistent session), and none is scaled by replicas of one definition."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    spool = re.search(r"KERA_SPOOL_DIR=(\S+)", dockerfile)
    assert spool is not None
    ingestors = _ingestors()
    assert len(ingestors) >= 2
    volumes, client_ids = [], []
    for name, s in ingestors.items():
        env = s["environment"]
        assert "KERA_SPOOL_DIR" not in env, name  # the image's folder, on this service's volume
        mounted = [v.split(":")[0] for v in s["volumes"] if v.split(":")[1] == spool.group(1)]
        assert len(mounted) == 1, f"{name} has no volume of its own at {spool.group(1)}"
        assert mounted[0] in COMPOSE["volumes"], f"{name}: {mounted[0]} is not a named volume"
        volumes.append(mounted[0])
        client_ids.append(env["KERA_MQTT_CLIENT_ID"])
        assert s.get("deploy", {}).get("replicas", 1) == 1, name
    assert len(set(volumes)) == len(volumes), volumes
    assert len(set(client_ids)) == len(client_ids), client_ids


def test_our_containers_run_unprivileged_on_a_read_only_root() -> None:
    for name, s in _ours().items():
        assert s.get("read_only") is True, name
        assert s.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in s.get("security_opt", []), name
        assert str(s.get("user", "kera")) not in ("0", "root"), name


def test_only_tls_is_published_beyond_loopback() -> None:
    """1883 carries passwords in clear and 3000 a login page: loopback unless opened on
    purpose (the variable's default); 8883 is the broker's TLS listener."""
    for name, s in COMPOSE["services"].items():
        for port in s.get("ports", []):
            host, _, container = port.rpartition(":")
            if container == "8883":
                continue
            assert re.fullmatch(r"\$\{KERA_[A-Z_]+_BIND:-127\.0\.0\.1\}:\d+", host), (name, port)


def test_the_broker_refuses_oversized_packets() -> None:
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    settings = dict(line.split(None, 1) for line in conf if line and not line.startswith("#"))
    limit = int(settings["max_packet_size"])
    # Room for the ingestor's default KERA_MAX_PAYLOAD_BYTES and a long topic, not much more.
    assert 65536 + 65536 <= limit <= 1 << 20
