"""Mutual TLS for a node's port (``tls = true`` in config.toml): who may connect at all.

A network has one certificate authority (``learnchain testnet --tls`` makes it; ``learnchain
tls issue`` certifies a joiner). Each node holds a certificate for its node id (the subject's
common name is the node key's address) on an ECDSA P-256 key: grpcio's TLS library does not
offer Ed25519 signatures in the handshake, so the Ed25519 node key cannot be the TLS key itself.
With TLS on, a node serves only clients with a certificate from the network's authority (peers,
and the CLI run with ``--home``), and dials peers the same way: traffic is encrypted, and a
stranger cannot even say Hello. Every node's certificate names ``PEER_NAME``: the authority, not
the host name, is what is checked, and the Hello's signature checks the node id.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from learnchain.consensus.types import Address

PEER_NAME = "learnchain-peer"
TLS_DIR = "tls"
CA_FILE = "ca.pem"
CERT_FILE = "node.pem"
KEY_FILE = "node_key.pem"
CA_KEY_FILE = "ca_key.pem"
NAME_OVERRIDE = ("grpc.ssl_target_name_override", PEER_NAME)
_VALID_FROM = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_VALID_FOR = datetime.timedelta(days=3650)


class TlsError(ValueError):
    """TLS files missing or unreadable; the message names the file."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM bytes: the network's authority, this node's certificate and its key."""

    ca: bytes
    cert: bytes
    key: bytes

    def server_credentials(self) -> grpc.ServerCredentials:
        """Serve only clients with a certificate from the network's authority."""
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Dial a node of the network, presenting this node's certificate."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def open_channel(self, address: str) -> grpc.Channel:
        """A (blocking) channel to the node at ``address``, for the CLI and tools."""
        return grpc.secure_channel(address, self.channel_credentials(), options=[NAME_OVERRIDE])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str, public_key: ec.EllipticCurvePublicKey, issuer: str, is_ca: bool
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_VALID_FROM)
        .not_valid_after(datetime.datetime.now(datetime.UTC) + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(PEER_NAME)]), critical=False
        )
    return builder


def create_authority(directory: Path, name: str) -> None:
    """A new certificate authority for a network: ``ca.pem`` and ``ca_key.pem`` in
    ``directory`` (keep the key away from the nodes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(f"{name} CA", key.public_key(), f"{name} CA", True).sign(
        key, hashes.SHA256()
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CA_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = directory / CA_KEY_FILE
    key_file.write_bytes(_pem_key(key))
    key_file.chmod(0o600)


def issue_node_files(authority: Path, home: Path, node_id: Address) -> None:
    """Certify a node: a fresh key and a certificate for ``node_id`` signed by the authority in
    ``authority``, written with the authority's certificate to ``home/tls``."""
    try:
        ca_pem = (authority / CA_FILE).read_bytes()
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
        ca_key = serialization.load_pem_private_key(
            (authority / CA_KEY_FILE).read_bytes(), password=None
        )
    except (OSError, ValueError) as error:
        raise TlsError(f"{authority}: not a certificate authority ({error})") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{authority / CA_KEY_FILE}: not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = ca_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    cert = _certificate(node_id.hex(), key.public_key(), str(issuer), False).sign(
        ca_key, hashes.SHA256()
    )
    directory = home / TLS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CA_FILE).write_bytes(ca_pem)
    (directory / CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = directory / KEY_FILE
    key_file.write_bytes(_pem_key(key))
    key_file.chmod(0o600)


def read_tls_files(home: Path) -> TlsFiles:
    """This node's TLS files from ``home/tls``; TlsError naming a missing or bad one."""
    directory = home / TLS_DIR
    found = []
    for name in (CA_FILE, CERT_FILE, KEY_FILE):
        path = directory / name
        try:
            data = path.read_bytes()
        except OSError as error:
            raise TlsError(
                f"{path}: cannot read it ({error.strerror}); `learnchain tls issue` writes it"
            ) from None
        if b"-----BEGIN" not in data:
            raise TlsError(f"{path}: not a PEM file")
        found.append(data)
    return TlsFiles(*found)
