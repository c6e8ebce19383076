"""Archive object routes over HTTP: upload, read, ranges, listing, trash, quotas, hostile names."""

from __future__ import annotations

import http.client
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.server.helpers import Device, ServerProcess, Tenant, register_device, sha, user_name


@pytest.fixture
def device(tenant: Tenant) -> Device:
    org = tenant.customer()
    return register_device(tenant.server, org["registration_key"], user_name())


def raw_request(server: ServerProcess, method: str, path: str, headers: dict[str, str],
                body: bytes | None = None, send_body: bool = True) -> tuple[int, bytes]:
    """Send a request byte for byte (no client-side path normalization)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        if body is not None and send_body:
            conn.send(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def storage_files(server: ServerProcess) -> set[Path]:
    root = server.data / "storage"
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()
            and p.relative_to(root).parts[0] != "tmp"}


def test_upload_then_read_back_whole_and_in_ranges(device: Device) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # larger than one read chunk: streamed
    name = device.put("data", data)
    path = f"/api/v1/archive/objects/data/{name}"
    assert device.request("GET", path).content == data
    head = device.request("HEAD", path)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
    cases = {"bytes=0-99": data[:100], "bytes=100-": data[100:], "bytes=-10": data[-10:],
             f"bytes=5-{len(data) * 2}": data[5:]}
    for header, expected in cases.items():
        part = device.request("GET", path, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == expected, header
        start = len(data) - len(expected) if header.startswith("bytes=-") else \
            int(header[6:].split("-")[0])
        assert part.headers["content-range"] == \
            f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
    past = device.request("GET", path, headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
    for bad in ("bytes=0-1,5-6", "items=0-1", "bytes=9-3"):
        assert device.request("GET", path, headers={"Range": bad}).status_code == 400, bad


def test_objects_are_never_overwritten_and_must_match_their_name(device: Device) -> None:
    name = device.put("snapshots", b"first")
    again = device.request("PUT", f"/api/v1/archive/objects/snapshots/{name}", content=b"first")
    assert again.status_code == 200 and again.json()["created"] is False
    wrong = device.request("PUT", f"/api/v1/archive/objects/snapshots/{name}", content=b"other")
    assert wrong.status_code == 400
    assert "does not match its name" in wrong.json()["detail"]
    assert device.request("GET", f"/api/v1/archive/objects/snapshots/{name}").content == \
        b"first"
    fresh = sha(b"never stored")
    corrupt = device.request("PUT", f"/api/v1/archive/objects/data/{fresh}", content=b"x")
    assert corrupt.status_code == 400
    assert device.request("HEAD", f"/api/v1/archive/objects/data/{fresh}").status_code == 404


def test_listing_is_per_kind(device: Device) -> None:
    index = device.put("index", b"an index")
    data = {device.put("data", os.urandom(100)) for _ in range(3)}
    assert device.names("data") == data
    assert device.names("index") == {index}
    assert device.names("keys") == set()


def test_devices_cannot_delete_but_can_trash_and_admins_restore(tenant: Tenant) -> None:
    org = tenant.customer()
    device = register_device(tenant.server, org["registration_key"], user_name())
    names = [device.put("data", os.urandom(64)) for _ in range(2)]
    refused = device.request("DELETE", f"/api/v1/archive/objects/data/{names[0]}")
    assert refused.status_code == 403 and "trash" in refused.json()["detail"]
    trashed = device.request("POST", "/api/v1/archive/trash", json={
        "objects": [{"kind": "data", "name": n} for n in names] +
                   [{"kind": "data", "name": sha(b"absent")}]})
    assert trashed.status_code == 200, trashed.text
    assert trashed.json()["trashed"] == 2 and trashed.json()["grace_days"] == 14
    assert trashed.json()["missing"] == [{"kind": "data", "name": sha(b"absent")}]
    assert device.names("data") == set()
    assert device.request("GET", f"/api/v1/archive/objects/data/{names[0]}").status_code == 404
    restored = tenant.api("POST", f"/api/v1/users/{device.user_id}/archive/restore-trash",
                          json={})
    assert restored.status_code == 200 and restored.json() == {"count": 2}
    assert device.names("data") == set(names)


def test_lock_objects_can_be_deleted_by_devices(device: Device) -> None:
    lock = device.put("locks", b"lock held by test-pc")
    assert device.request("DELETE", f"/api/v1/archive/objects/locks/{lock}").status_code == 204
    assert device.names("locks") == set()
    assert device.request("DELETE", f"/api/v1/archive/objects/locks/{lock}").status_code == 404


def test_uploads_need_a_content_length_and_a_reasonable_size(device: Device) -> None:
    name = sha(b"chunked")
    status, body = raw_request(device.server, "PUT", f"/api/v1/archive/objects/data/{name}",
                               {**device.headers, "Transfer-Encoding": "chunked"},
                               b"7\r\nchunked\r\n0\r\n\r\n")
    assert status == 411, body
    status, body = raw_request(device.server, "PUT", f"/api/v1/archive/objects/data/{name}",
                               {**device.headers, "Content-Length": str(1 << 40)},
                               b"", send_body=False)
    assert status == 413 and b"at most" in body


HOSTILE_PATHS = [
    "/api/v1/archive/objects/data/..",
    "/api/v1/archive/objects/data/../../../../etc/passwd",
    "/api/v1/archive/objects/data/..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/v1/archive/objects/data/%2e%2e%2f%2e%2e",
    "/api/v1/archive/objects/data/" + "0" * 63 + "%00",
    "/api/v1/archive/objects/data/%00",
    "/api/v1/archive/objects/data/" + "0" * 65,
    "/api/v1/archive/objects/data/" + "0" * 5000,
    "/api/v1/archive/objects/data/" + "A" * 64,
    "/api/v1/archive/objects/data/" + "0" * 62 + "%2F0",
    "/api/v1/archive/objects/data/" + "g" * 64,
    "/api/v1/archive/objects/DATA/" + "0" * 64,
    "/api/v1/archive/objects/../" + "0" * 64,
    "/api/v1/archive/objects/..%2Fkeys/" + "0" * 64,
    "/api/v1/archive/objects/trash/" + "0" * 64,
    "/api/v1/archive/objects/data%00/" + "0" * 64,
]


def test_hostile_names_get_400_and_write_nothing(device: Device) -> None:
    device.put("data", b"something legitimate")
    before = storage_files(device.server)
    body = b"payload"
    for path in HOSTILE_PATHS:
        for method in ("PUT", "GET", "HEAD", "DELETE"):
            headers = dict(device.headers)
            if method == "PUT":
                headers["Content-Length"] = str(len(body))
            status, raw = raw_request(device.server, method, path, headers,
                                      body if method == "PUT" else None)
            assert status == 400, (method, path, status, raw[:200])
    for kind in ("DATA", "..", "nope"):
        status, _ = raw_request(device.server, "GET", f"/api/v1/archive/objects/{kind}",
                                device.headers)
        assert status == 400, kind
    assert storage_files(device.server) == before
    assert not list(device.server.data.parent.glob("etc*"))


def test_quota_is_refused_from_content_length_before_the_body(tenant: Tenant) -> None:
    org = tenant.customer(storage_quota_bytes=1000)
    device = register_device(tenant.server, org["registration_key"], user_name())
    device.put("data", os.urandom(600))
    big = os.urandom(600)
    name = sha(big)
    # Only the headers are sent: the server must answer without waiting for the body.
    status, body = raw_request(device.server, "PUT", f"/api/v1/archive/objects/data/{name}",
                               {**device.headers, "Content-Length": str(len(big))}, big,
                               send_body=False)
    assert status == 507, body
    assert b"storage quota" in body and b"raise the quota" in body
    assert device.request("HEAD", f"/api/v1/archive/objects/data/{name}").status_code == 404
    # re-uploading an object that is already stored adds nothing and is accepted
    again = device.request("PUT", f"/api/v1/archive/objects/data/{device.put('data', b'')}",
                           content=b"")
    assert again.status_code == 200
    assert tenant.api("PATCH", f"/api/v1/orgs/{org['id']}",
                      json={"storage_quota_bytes": None}).status_code == 200
    assert device.put("data", big) == name


def test_msp_quota_covers_its_customers(tenant: Tenant) -> None:
    assert tenant.api("PATCH", f"/api/v1/orgs/{tenant.org_id}",
                      json={"storage_quota_bytes": 500}).status_code == 200
    org = tenant.customer()
    device = register_device(tenant.server, org["registration_key"], user_name())
    device.put("data", os.urandom(400))
    response = device.request("PUT", f"/api/v1/archive/objects/data/{sha(b'y' * 200)}",
                              content=b"y" * 200)
    assert response.status_code == 507
    assert tenant.name in response.json()["detail"]


def test_backup_completed_updates_the_device(device: Device) -> None:
    response = device.request("POST", "/api/v1/device/backup-completed",
                              json={"completed_at": "2025-01-02T03:04:05Z"})
    assert response.status_code == 200, response.text
    assert response.json()["last_backup_at"].startswith("2025-01-02T03:04:05")
    for bad in ("2999-01-01T00:00:00Z", "2025-01-02T03:04:05", "yesterday"):
        refused = device.request("POST", "/api/v1/device/backup-completed",
                                 json={"completed_at": bad})
        assert refused.status_code == 400, bad
    me = device.request("GET", "/api/v1/device").json()
    assert me["last_backup_at"].startswith("2025-01-02T03:04:05")
