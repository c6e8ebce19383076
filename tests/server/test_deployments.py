"""Other deployments of the real server: PostgreSQL + S3 (moto), and TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Callable
from pathlib import Path

import boto3
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.server.conftest import fresh_postgres_database
from tests.server.helpers import ServerProcess, make_tenant, register_device, user_name


def test_postgresql_and_s3_deployment(start_server: Callable[..., ServerProcess],
                                      postgres_url: str, s3_endpoint: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_S3_ENDPOINT", s3_endpoint)
    bucket = "cairn-e2e-" + os.urandom(4).hex()
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    with fresh_postgres_database(postgres_url) as url:
        plain_url = url.replace("postgresql+psycopg://", "postgresql://")
        server = start_server("--db", plain_url, "--storage", f"s3://{bucket}/cairn",
                              data=tmp_path / "spool")
        tenant = make_tenant(server)
        device = register_device(server, tenant.key, user_name())
        data = os.urandom(70_000)
        name = device.put("data", data)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert any(k.endswith(name) and k.startswith("cairn/") for k in keys)
        part = device.request("GET", f"/api/v1/archive/objects/data/{name}",
                              headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]
        username = tenant.api("GET", f"/api/v1/users/{device.user_id}").json()["username"]
        done = tenant.api("POST", f"/api/v1/users/{device.user_id}/deactivate",
                          json={"confirm_username": username})
        assert done.status_code == 200 and done.json()["data_deleted"] is True
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
        server.stop()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = start_server("--tls-cert", str(cert), "--tls-key", str(key))
    assert server.url.startswith("https://")
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
        assert client.get(server.url + "/api/v1/health").status_code == 200
