"""A real mosquitto for tests: started on a free 127.0.0.1 port with a generated config.

Modes: anonymous, password file (mosquitto_passwd), TLS (certificates generated here with
`cryptography`). The broker can be stopped, killed and restarted on the same port, which is
how the fault tests take the broker away from a running agent.

Usage in a test module:

    broker = MosquittoBroker(tmp_path, users={"agent": "secret"})
    broker.start()
    ...
    broker.stop()

or the `mosquitto` fixture factory from tests that import `mosquitto_factory`.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")


def mosquitto_binary() -> str | None:
    for path in MOSQUITTO_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("mosquitto")


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick; never 1883)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != 1883:
            return port


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing accepts on 127.0.0.1:{port}") from None
            time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# Test certificates
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerCertificates:
    """A CA, a server certificate it signed, and a client certificate it signed (PEM files)."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def generate_certificates(directory: Path, name: str = "test") -> BrokerCertificates:
    """A fresh CA and certificates for 127.0.0.1/localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def subject(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def builder(common_name: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(subject(common_name))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = subject(f"{name} CA")
    ca_cert = (
        builder(f"{name} CA", ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, usage: x509.ObjectIdentifier, server: bool) -> Any:
        key = ec.generate_private_key(ec.SECP256R1())
        cert_builder = (
            builder(common_name, ca_name, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if server:
            cert_builder = cert_builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        return key, cert_builder.sign(ca_key, hashes.SHA256())

    server_key, server_cert = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, server=True)
    client_key, client_cert = leaf("sbms-agent", ExtendedKeyUsageOID.CLIENT_AUTH, server=False)

    pem = serialization.Encoding.PEM
    certificates = BrokerCertificates(
        ca_file=directory / f"{name}-ca.crt",
        server_cert=directory / f"{name}-server.crt",
        server_key=directory / f"{name}-server.key",
        client_cert=directory / f"{name}-client.crt",
        client_key=directory / f"{name}-client.key",
    )
    certificates.ca_file.write_bytes(ca_cert.public_bytes(pem))
    certificates.server_cert.write_bytes(server_cert.public_bytes(pem))
    certificates.client_cert.write_bytes(client_cert.public_bytes(pem))
    write_key(server_key, certificates.server_key)
    write_key(client_key, certificates.client_key)
    return certificates


# ---------------------------------------------------------------------------------------------
# The broker
# ---------------------------------------------------------------------------------------------


class MosquittoBroker:
    """One mosquitto subprocess with its own directory, config and log."""

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        tls: BrokerCertificates | None = None,
        require_client_certificate: bool = False,
        port: int | None = None,
        acl_file: Path | None = None,
        options: Sequence[str] = (),
    ) -> None:
        """`options`: further mosquitto.conf lines for the listener (e.g. an example's)."""
        binary = mosquitto_binary()
        if binary is None:
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.users = users
        self.tls = tls
        self.require_client_certificate = require_client_certificate
        self.acl_file = acl_file
        self.options = tuple(options)
        self.port = port if port is not None else free_port()
        self.host = "127.0.0.1"
        self.config_path = self.directory / "mosquitto.conf"
        self.log_path = self.directory / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # As root mosquitto drops to the "mosquitto" user, who cannot read our temp files.
            lines.append("user root")
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            password_file = self.directory / "passwords"
            password_file.unlink(missing_ok=True)
            for index, (user, password) in enumerate(self.users.items()):
                create = ["-c"] if index == 0 else []
                subprocess.run(
                    ["mosquitto_passwd", "-b", *create, str(password_file), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        lines += self.options
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
            if self.require_client_certificate:
                lines.append("require_certificate true")
        self.config_path.write_text("\n".join(lines) + "\n")

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            self._wait_ready(timeout_s)
        except TimeoutError:
            self.kill()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {stderr}\n{self.log_text()}")
            try:
                wait_for_port(self.port, timeout_s=0.2)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Orderly stop (SIGTERM); kill if it does not go."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_pipes()

    def kill(self) -> None:
        """Sudden death (SIGKILL): clients see their sockets reset, no goodbye."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_pipes()

    def restart(self) -> None:
        self.kill()
        self.start()

    def _close_pipes(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


@contextlib.contextmanager
def running_broker(directory: Path, **kwargs: object) -> Iterator[MosquittoBroker]:
    """A started broker that is killed at the end, whatever happened."""
    broker = MosquittoBroker(directory, **kwargs)  # type: ignore[arg-type]
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
