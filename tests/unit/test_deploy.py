"""The deployment files: compose.yaml against the Compose specification's JSON schema, pinned
images, every variable in .env.example without a real secret, a non-root multi-stage image and
a broker that refuses anonymous clients."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

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
