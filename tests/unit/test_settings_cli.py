from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devices.environment import env
from ingest.settings import IngestSettings, load_settings, state_dir

# Run again with the clock 400 days ahead by scripts/test (the factor series and the CLIs).
pytestmark = pytest.mark.shifted_clock


def test_precedence_file_env_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "kera.toml"
    f.write_text('influx_db = "from-file"\nbatch_size = 100\nmqtt_url = "mqtt://file:1883"\n')
    monkeypatch.setenv("KERA_INFLUX_DB", "from-env")
    monkeypatch.setenv("KERA_INFLUX_TOKEN", "tk")
    s = load_settings(f, mqtt_url="mqtt://flag:1883", influx_url=None)
    assert s.mqtt_url == "mqtt://flag:1883"  # flag beats file
    assert s.influx_db == "from-env"  # env beats file
    assert s.batch_size == 100  # file beats default
    assert s.influx_url == "http://127.0.0.1:8086"  # None flags are ignored
    assert s.influx_token is not None
    assert "tk" not in repr(s)


# Every setting that names a place on disk, as an environment variable.
PATH_SETTINGS = ("KERA_SPOOL_DIR", "KERA_SITE_CONFIG", "KERA_STATE_DIR", "KERA_SETTINGS_FILE")


def test_an_empty_variable_is_not_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`KERA_SPOOL_DIR=` (set but empty) is the default, not the current directory; the same for
    every KERA_* setting, paths or not."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    for name in PATH_SETTINGS:
        monkeypatch.setenv(name, "")
    for name in IngestSettings.model_fields:
        monkeypatch.setenv(f"KERA_{name.upper()}", "")
    monkeypatch.setenv("KERA_MQTT_CLIENT_ID", "kera-ingest-test")
    s = load_settings()
    defaults = IngestSettings.model_construct()
    for name in IngestSettings.model_fields:
        if name != "mqtt_client_id":
            assert getattr(s, name) == getattr(defaults, name), name
    assert s.site_config is None
    assert s.spool_path() == tmp_path / "home/.local/state/kera/spool/kera-ingest-test"
    assert state_dir() == tmp_path / "home/.local/state/kera"
    monkeypatch.setenv("XDG_STATE_HOME", "")
    assert state_dir() == tmp_path / "home/.local/state/kera"
    assert env("KERA_SITE_CONFIG") is None
    monkeypatch.setenv("KERA_SITE_CONFIG", "site.yaml")
    assert env("KERA_SITE_CONFIG") == "site.yaml"


def test_bad_site_file_stops_start_up_with_a_precise_message(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text("site: kera\ndevices:\n  - {id: bin-9, kind: waste_bin, space: yard}\n")
    exe = Path(sys.executable).with_name("kera-ingest")
    r = subprocess.run(
        [str(exe), "run", "--config", str(site), "--mqtt-url", "mqtt://127.0.0.1:1"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    out = " ".join(r.stderr.split())
    assert str(site) in out
    assert "bin-9" in out
    assert "depth_mm" in out


def test_factor_series_beside_the_site_file_is_read_and_checked(tmp_path: Path) -> None:
    (tmp_path / "factors").mkdir()
    csv = tmp_path / "factors" / "2026.csv"
    csv.write_text("startTime;value\n2026-11-23T00:00:00Z;40\n2026-11-23T00:03:00Z;50\n")
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: kera\nimpact:\n  emission_factors_csv: factors/2026.csv\n"
        "  emission_factor_source: {kind: published, publisher: Fingrid, year: 2026,\n"
        "    where: 'emission factor of electricity consumed in Finland, dataset 265'}\n"
        "devices:\n  - {id: m1, kind: energy_meter, space: hall}\n"
    )
    exe = Path(sys.executable).with_name("kera-ingest")
    ok = subprocess.run(
        [str(exe), "check-site", str(site)], check=False, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "warning" not in ok.stderr  # a published factor
    assert "emission factors: 1 hours from the CSV, 2026-11-23 00:00 UTC" in ok.stdout
    csv.write_text("startTime;value\n2026-11-23T00:00:00Z;forty\n")
    bad = subprocess.run(
        [str(exe), "check-site", str(site)], check=False, capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert f"{csv}:2: could not convert string to float" in "".join(bad.stderr.splitlines())


def test_check_site_warns_of_an_example_factor_and_still_passes() -> None:
    """The bundled site's electricity factor is an example: said on stderr with how to set a
    published one; stdout (here JSON lines) stays machine-readable."""
    exe = Path(sys.executable).with_name("kera-ingest")
    done = subprocess.run(
        [str(exe), "check-site", "--json"], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "warning: The electricity emissions use an example emission factor (0.05 kg/kWh)" in (
        done.stderr
    )
    assert "table 14qt" in done.stderr
    assert "district-heat" not in done.stderr  # Fortum's figure is published
    assert all(line.startswith("{") for line in done.stdout.splitlines())


def test_check_site_runs_a_mapping_on_an_example(tmp_path: Path) -> None:
    """The technician's dry run: a vendor payload in, the exact line protocol out (unwrapped,
    on stdout), and what the map does not name on stderr."""
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: kera\ndevices:\n"
        "  - {id: air-1, kind: indoor_air, space: library, profile: milesight-am307}\n"
        "  - {id: am103, kind: indoor_air, space: room, profile: milesight-am103}\n"
    )
    example = tmp_path / "am307.json"
    example.write_text('{"temperature": 23.8, "pir": "idle", "light_level": 2, "co2": 936}')
    run = _example(site, example, "air-1")
    assert run.returncode == 0, run.stderr
    (line,) = run.stdout.splitlines()
    assert line.startswith("indoor_air,device=air-1,site=kera,space=library ")
    assert "temperature_c=23.8,co2_ppm=936.0,motion=false " in line
    assert "ignored (not mapped): light_level" in run.stderr
    frame = tmp_path / "frame.hex"
    frame.write_text("017564 03671801 04686D 077DC501\n")
    raw = _example(site, frame, "am103")
    assert raw.returncode == 0, raw.stderr
    assert "temperature_c=28.0,humidity_pct=54.5,co2_ppm=453.0,battery_pct=100.0" in raw.stdout
    example.write_text('{"pir": "sideways"}')
    bad = _example(site, example, "air-1")
    assert bad.returncode == 1
    assert "mapping_failed" in bad.stderr
    assert "sideways" in bad.stderr
    missing = _example(site, tmp_path / "no.json", "air-1")
    assert missing.returncode == 2
    assert "cannot read the example" in missing.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def test_an_unreachable_broker_is_two_lines_not_a_traceback() -> None:
    exe = Path(sys.executable).with_name("kera-sim")
    for args in (["send", "occ-cafe", "people=4"], ["watch", "--timeout", "2"]):
        run = subprocess.run(
            [str(exe), *args, "--mqtt-url", "mqtt://127.0.0.1:9"],
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 2, run.stderr
        assert "could not reach the MQTT broker at 127.0.0.1:9" in run.stderr
        assert "KERA_MQTT_URL" in run.stderr
        assert "Traceback" not in run.stderr
        assert "rejected" not in run.stderr


def test_check_site_stops_a_runaway_codec_instead_of_hanging(tmp_path: Path) -> None:
    """The codec of --example runs in its worker with the service's deadline: a backtracking
    pattern (issue 26) is a clear rejection within seconds, not a command that never ends."""
    from tests.unit.test_codec_sandbox import RUNAWAY_UPLINK, TEXT_FRAME_CODEC

    (tmp_path / "text.js").write_text(TEXT_FRAME_CODEC)
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: kera\ndevices:\n  - {id: air-text, kind: indoor_air, space: lab, codec: text.js}\n"
    )
    frame = tmp_path / "frame.hex"
    frame.write_text(RUNAWAY_UPLINK.hex())
    run = _example(site, frame, "air-text", timeout=30)
    assert run.returncode == 1, run.stderr
    assert "codec_failed" in run.stderr
    assert "did not finish within 1 s" in run.stderr
    assert "Traceback" not in run.stderr


def _example(
    site: Path, example: Path, device: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`kera-ingest check-site SITE --example EXAMPLE --device DEVICE`, as a technician runs it."""
    exe = Path(sys.executable).with_name("kera-ingest")
    return subprocess.run(
        [str(exe), "check-site", str(site), "--example", str(example), "--device", device],
        check=False, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
