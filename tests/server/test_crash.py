"""kill -9 during uploads leaves no partial object under a final name."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from tests.server.helpers import ServerProcess, make_tenant, register_device, sha, user_name

CHUNK = 256 * 1024
CHUNKS = 24  # 6 MiB per object


def slow_body(data: bytes, started: threading.Event) -> Iterator[bytes]:
    for offset in range(0, len(data), CHUNK):
        if offset == CHUNK * 4:
            started.set()
        yield data[offset:offset + CHUNK]
        time.sleep(0.05)


def final_objects(data_dir: Path) -> list[Path]:
    root = data_dir / "storage" / "objects"
    return [p for p in root.rglob("*") if p.is_file() and len(p.name) == 64]


def test_kill_during_uploads_leaves_no_partial_object(
        start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data=data_dir)
    tenant = make_tenant(server)
    device = register_device(server, tenant.key, user_name())
    payloads = [os.urandom(CHUNK * CHUNKS) for _ in range(3)]
    started = [threading.Event() for _ in payloads]
    outcome: dict[str, int | str] = {}

    def upload(data: bytes, event: threading.Event) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                response = client.put(f"/api/v1/archive/objects/data/{sha(data)}", headers={
                    **device.headers, "Content-Length": str(len(data))},
                    content=slow_body(data, event))
                outcome[sha(data)] = response.status_code
        except httpx.TransportError:
            outcome[sha(data)] = "cut off"

    threads = [threading.Thread(target=upload, args=pair) for pair in zip(payloads, started,
                                                                           strict=True)]
    for thread in threads:
        thread.start()
    for event in started:
        assert event.wait(60)
    server.kill9()
    for thread in threads:
        thread.join(60)
    assert "cut off" in outcome.values()  # the kill did land in the middle of uploads

    for path in final_objects(data_dir):  # whatever exists under a final name is whole
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    again = start_server(data=data_dir)
    device.server = again
    for data in payloads:
        path = f"/api/v1/archive/objects/data/{sha(data)}"
        finished = outcome[sha(data)] == 201
        assert device.request("HEAD", path).status_code == (200 if finished else 404)
        assert device.put("data", data) == sha(data)
        assert device.request("GET", path).content == data
    assert {p.name for p in final_objects(data_dir)} == {sha(d) for d in payloads}
