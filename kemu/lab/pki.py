"""A lab's certificate authority: one CA per lab, certificates for its servers and clients (kubeadm's `pki/` dir).

Every key and certificate lives in one root-only directory (0700, files 0600); nothing here is readable by another
local user. Servers (etcd, the node agents' endpoints, the API server) and clients (kemu's components, the admin)
all chain to the same CA, so a peer is trusted exactly when it holds a certificate this lab issued.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)      # kubeadm's leaf certificates last a year (its CA ten)
CA_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class CertPair:
    cert: str          # PEM certificate path
    key: str           # PEM private key path (0600)


class LabPKI:
    """The CA of one lab and the certificates it issued, under `directory`."""

    def __init__(self, directory: str) -> None:
        self.dir = directory

    @property
    def ca(self) -> CertPair:
        return CertPair(os.path.join(self.dir, "ca.crt"), os.path.join(self.dir, "ca.key"))

    def ensure_ca(self, common_name: str = "kemu-ca") -> CertPair:
        """Create the CA once; later calls return it unchanged."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if os.path.exists(self.ca.cert) and os.path.exists(self.ca.key):
            return self.ca
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + CA_VALIDITY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        _write(self.ca.key, _key_pem(key))
        _write(self.ca.cert, cert.public_bytes(serialization.Encoding.PEM))
        return self.ca

    def issue(self, name: str, common_name: str, organizations: tuple[str, ...] = (),
              dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = (),
              server: bool = False, client: bool = False) -> CertPair:
        """A certificate `name`.crt/.key signed by the CA (issued once; an existing pair is returned as it is).

        The subject is CN=`common_name`, O=`organizations` (Kubernetes reads the user name from CN and the groups
        from O); `server` certificates carry the SANs a client checks, `client` certificates the clientAuth usage.
        """
        pair = CertPair(os.path.join(self.dir, f"{name}.crt"), os.path.join(self.dir, f"{name}.key"))
        if os.path.exists(pair.cert) and os.path.exists(pair.key):
            return pair
        ca = self.ensure_ca()
        with open(ca.key, "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), password=None)
        with open(ca.cert, "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
                            + [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations])
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH]
                                                                          if client else [])
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        sans = [x509.DNSName(d) for d in dns_names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(pair.key, _key_pem(key))
        _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
        return pair


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _write(path: str, data: bytes) -> None:
    """Write root-only, atomically (a reader never sees half a key)."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
