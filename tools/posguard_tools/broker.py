"""A real MQTT broker on a free loopback port for tests, `posguard sim --fleet` and `posguard fleet`:
amqtt (pure Python, pinned in pyproject.toml) in a subprocess, so it can be killed mid-publish and
started again on the same port like a real broker going down and coming back."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from posguard_tools import paths

_CONFIG = """\
listeners:
  default:
    type: tcp
    bind: 127.0.0.1:{port}
    max_connections: 200
plugins:
  amqtt.plugins.authentication.AnonymousAuthPlugin:
    allow_anonymous: true
"""
_START_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """`with Broker(tmp_dir) as b:` ... `b.url`, `b.stop()`, `b.start()` (same port again)."""

    def __init__(self, work_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = work_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "broker.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        cfg = self.dir / "broker.yaml"
        cfg.write_text(_CONFIG.format(port=self.port))
        amqtt = Path(sys.executable).parent / "amqtt"
        cmd = [str(amqtt) if amqtt.exists() else paths.venv_bin("amqtt"), "-c", str(cfg)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + _START_S
        while not accepting(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"MQTT broker did not start on port {self.port}: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop the broker (kill: SIGKILL, as a crash or a pulled cable would leave the clients)."""
        p = self.proc
        self.proc = None
        if p is None or p.poll() is not None:
            return
        if kill:
            p.kill()
        else:
            p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        deadline = time.monotonic() + 5
        while accepting(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
