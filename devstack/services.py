"""A real Mosquitto and a real InfluxDB 1.x as child processes on free loopback ports.

Used by the tests, the demo and the benchmarks, so all three run against the same servers that
production uses, configured the same way. Nothing here listens beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

APT_PACKAGES = {"mosquitto": "mosquitto", "influxd": "influxdb"}
SEARCH_PATH = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


class ServiceError(RuntimeError):
    pass


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in SEARCH_PATH:
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    return None


def missing_binaries() -> list[str]:
    """Debian packages to install for the binaries that are not on this machine."""
    return [pkg for binary, pkg in APT_PACKAGES.items() if find_binary(binary) is None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(
                f"{proc.args!r} exited with {proc.returncode}:\n{log.read_text(errors='replace')}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServiceError(f"port {port} not open after {timeout}s:\n{log.read_text()[-2000:]}")


class _Child:
    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    def _spawn(self, argv: list[str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        # Own process group, so a Ctrl-C meant for the demo reaches us first and we stop the
        # servers in order, after the last write.
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a test may have frozen it with SIGSTOP
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        t: type[BaseException] | None,
        e: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Mosquitto(_Child):
    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        extra_conf: str = "",
        password_file: Path | None = None,
        acl_file: Path | None = None,
    ) -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.extra_conf = extra_conf
        # Both given: the production security model (deploy/mosquitto), anonymous refused.
        self.password_file = password_file
        self.acl_file = acl_file

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config(self) -> str:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        # Persistence on, so queued QoS 1 readings of an offline persistent session survive a
        # broker restart. The queue limits are raised well above the 1000-message default:
        # with the default, a broker silently drops readings for an ingestor that is
        # restarting or catching up.
        return "\n".join(
            [
                f"listener {self.port} 127.0.0.1",
                *(
                    [
                        "allow_anonymous false",
                        f"password_file {self.password_file}",
                        f"acl_file {self.acl_file}",
                    ]
                    if self.password_file and self.acl_file
                    else ["allow_anonymous true"]
                ),
                # Started as root, mosquitto would switch to the `mosquitto` user and then fail
                # to write its persistence file into our folder; keep the current user.
                f"user {getpass.getuser()}",
                "persistence true",
                f"persistence_location {data}/",
                "autosave_interval 5",
                "max_queued_messages 1000000",
                "max_queued_bytes 0",
                "max_inflight_messages 0",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_dest stdout",
                self.extra_conf,
                "",
            ]
        )

    def start(self, timeout: float = 10.0) -> Mosquitto:
        binary = find_binary("mosquitto")
        if binary is None:
            raise ServiceError("mosquitto not found: apt-get install mosquitto")
        conf = self.workdir / "mosquitto.conf"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf.write_text(self.config())
        self._spawn([binary, "-c", str(conf)])
        assert self.proc is not None
        _wait_for_port(self.port, self.proc, self.log_path, timeout)
        return self


class InfluxDB(_Child):
    name = "influxdb"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        d = self.workdir
        return f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d}/meta"

[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  # Tests and the demo write little; a small cache keeps several instances light.
  cache-max-memory-size = "256m"
  index-version = "inmem"

[coordinator]
  log-queries-after = "0s"

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"""

    def start(self, timeout: float = 30.0) -> InfluxDB:
        binary = find_binary("influxd")
        if binary is None:
            raise ServiceError("influxd not found: apt-get install influxdb")
        conf = self.workdir / "influxdb.conf"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf.write_text(self.config())
        self._spawn([binary, "-config", str(conf)])
        assert self.proc is not None
        _wait_for_port(self.port, self.proc, self.log_path, timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Our own InfluxDB on loopback (http://127.0.0.1:port): the scheme is ours.
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:  # noqa: S310
                    if r.status == 204:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServiceError(f"InfluxDB did not answer /ping:\n{self.log_path.read_text()}")
            time.sleep(0.1)
