"""A real MQTT broker on a free loopback port for tests, `posguard sim --fleet` and `posguard fleet`:
amqtt (pure Python, pinned in pyproject.toml) in a subprocess, so it can be killed mid-publish and
started again on the same port like a real broker going down and coming back."""

from __future__ import annotations

import shutil
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
_TLS_LISTENER = """\
  tls:
    type: tcp
    bind: 127.0.0.1:{port}
    max_connections: 200
    ssl: true
    certfile: {cert}
    keyfile: {key}
"""
_START_S = 20.0


def _openssl(*args: str) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("no `openssl` command on this machine: cannot make a test certificate")
    r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {r.stderr.strip()[-400:]}")


def make_ca(work_dir: Path, name: str) -> tuple[Path, Path]:
    """A throwaway CA (EC P-256, two days): (certificate PEM, key PEM) in work_dir."""
    work_dir.mkdir(parents=True, exist_ok=True)
    cert, key = work_dir / f"{name}.pem", work_dir / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN=posguard test {name}")
    return cert, key


def to_der(cert: Path) -> Path:
    """The certificate as DER beside it (what the board's ca_file holds: MicroPython's unix-port build
    refuses PEM in SSLContext.load_verify_locations, "invalid cert")."""
    out = cert.with_suffix(".der")
    _openssl("x509", "-in", str(cert), "-outform", "der", "-out", str(out))
    return out


def make_server_cert(work_dir: Path, ca: tuple[Path, Path], host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A broker certificate for `host` (IP or DNS name in subjectAltName) signed by `ca`."""
    key, csr, cert = work_dir / "broker.key", work_dir / "broker.csr", work_dir / "broker.pem"
    ext = work_dir / "broker.ext"
    san = f"IP:{host}" if host.replace(".", "").isdigit() else f"DNS:{host}"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
             "-out", str(csr), "-subj", f"/CN={host}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return cert, key


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
    """`with Broker(tmp_dir) as b:` ... `b.url`, `b.stop()`, `b.start()` (same port again).
    tls: (certificate, key) files: a second listener on `tls_port` speaks MQTT over TLS (`tls_url`); the
    plain one stays for the test's back office."""

    def __init__(self, work_dir: Path, port: int | None = None, tls: tuple[Path, Path] | None = None) -> None:
        self.tls = tls
        self.port = port or free_port()
        self.tls_port = free_port() if tls else 0
        self.dir = work_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "broker.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://127.0.0.1:{self.tls_port}"

    def start(self) -> Broker:
        cfg = self.dir / "broker.yaml"
        text = _CONFIG.format(port=self.port)
        if self.tls:
            listener = _TLS_LISTENER.format(port=self.tls_port, cert=self.tls[0].resolve(), key=self.tls[1].resolve())
            text = text.replace("plugins:\n", listener + "plugins:\n")
        cfg.write_text(text)
        amqtt = Path(sys.executable).parent / "amqtt"
        cmd = [str(amqtt) if amqtt.exists() else paths.venv_bin("amqtt"), "-c", str(cfg)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + _START_S
        while not (accepting(self.port) and (not self.tls or accepting(self.tls_port))):
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
