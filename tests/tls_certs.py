"""Certificates made in the test with `cryptography`: a CA, a server certificate, and the broken kinds.

pki = TestPki(directory)               # ca.crt, plus another CA (other-ca.crt) that signed nothing of ours
pki.server("server", hosts=["127.0.0.1", "localhost"])              # server.crt, server.key
pki.server("expired", hosts=["127.0.0.1"], expired=True)
pki.server("wrong-host", hosts=["broker.example.org"])
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o644)  # the broker drops root privileges before it reads its key; a test key, nothing to protect


def _self_signed_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


class TestPki:
    """A throwaway CA in `directory`, issuing server certificates on demand."""

    __test__ = False  # not a test class, whatever its name says

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        self._ca_key, self._ca_cert = _self_signed_ca("Vaka test CA")
        self.ca_file = directory / "ca.crt"
        self.ca_file.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))
        _, other = _self_signed_ca("Some other CA")
        self.other_ca_file = directory / "other-ca.crt"
        self.other_ca_file.write_bytes(other.public_bytes(serialization.Encoding.PEM))

    def client(self, name: str) -> tuple[Path, Path]:
        """Issue a client certificate `name.crt` / `name.key` (CN = name); returns (cert, key) paths."""
        return self.server(name, [name], usage=x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)

    def server(
        self,
        name: str,
        hosts: list[str],
        *,
        expired: bool = False,
        usage: x509.ObjectIdentifier = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
    ) -> tuple[Path, Path]:
        """Issue `name.crt` / `name.key` for `hosts` (IP addresses or DNS names); returns (cert, key) paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        start, end = (
            (now - timedelta(days=30), now - timedelta(days=1))
            if expired
            else (now - timedelta(hours=1), now + timedelta(days=30))
        )
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path
