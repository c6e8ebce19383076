"""Fast tests of the agent ↔ server building blocks (no processes, no network)."""

from __future__ import annotations

import json
import random
import stat
from pathlib import Path

import httpx
import pytest

from agent.credentials import Profile, SecretStore
from agent.dest.retry import RetryPolicy, retrying
from agent.dest.throttle import RateLimiter, parse_rate
from agent.errors import (
    AgentTooOld,
    DeviceLimitReached,
    DeviceNotAuthorized,
    IntegrityError,
    KeyPolicyRefused,
    QuotaExceeded,
    RegistrationKeyInvalid,
    ServerRefused,
    ServerUnreachable,
    UsageError,
    WrongCredentials,
)
from agent.remote import sealing
from agent.remote.http import normalize_pin, normalize_url, raise_for_problem
from server.domain import escrow


def _problem(status: int, slug: str, detail: str = "A sentence.",
             headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"type": f"urn:cairn:problem:{slug}", "title": "t", "status": status,
            "detail": detail}
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(("status", "slug", "error", "code"), [
    (403, "registration-key-invalid", RegistrationKeyInvalid, 10),
    (401, "wrong-credentials", WrongCredentials, 11),
    (409, "device-limit-reached", DeviceLimitReached, 13),
    (403, "agent-too-old", AgentTooOld, 14),
    (401, "unauthenticated", DeviceNotAuthorized, 17),
    (403, "key-policy", KeyPolicyRefused, 19),
    (507, "quota-exceeded", QuotaExceeded, 8),
    (503, "service-unavailable", ServerUnreachable, 15),
    (429, "too-many-requests", ServerUnreachable, 15),
    (413, "payload-too-large", ServerRefused, 7),
])
def test_problems_become_errors_with_the_servers_sentence(status: int, slug: str, error: type,
                                                          code: int) -> None:
    with pytest.raises(error) as caught:
        raise_for_problem(_problem(status, slug, "The server's own sentence."), KeyError)
    assert type(caught.value) is error and caught.value.exit_code == code
    assert "The server's own sentence." in str(caught.value)


def test_404_uses_the_callers_missing_error_and_retry_after_is_kept() -> None:
    with pytest.raises(KeyError):
        raise_for_problem(_problem(404, "not-found"), KeyError)
    with pytest.raises(ServerUnreachable) as caught:
        raise_for_problem(_problem(429, "slow-down", headers={"Retry-After": "7"}), KeyError)
    assert caught.value.retry_after == 7.0
    raise_for_problem(httpx.Response(204), KeyError)  # success: nothing raised


def test_a_non_problem_error_body_still_gives_a_sentence() -> None:
    with pytest.raises(ServerUnreachable, match="502 Bad Gateway"):
        raise_for_problem(httpx.Response(502, text="<html>proxy</html>"), KeyError)


@pytest.mark.parametrize("url", ["ftp://x", "backup.example.com", "http://10.0.0.5:8443",
                                 "https://x/?a=1"])
def test_unusable_server_addresses_are_refused(url: str) -> None:
    with pytest.raises(UsageError):
        normalize_url(url)


def test_server_addresses_and_pins_are_normalized() -> None:
    assert normalize_url(" https://Backup.example.com:8443/ ") == "https://Backup.example.com:8443"
    assert normalize_url("http://127.0.0.1:9") == "http://127.0.0.1:9"
    assert normalize_pin("AB:" * 31 + "AB") == "ab" * 32
    with pytest.raises(UsageError):
        normalize_pin("abc")


def _flaky(failures: int) -> tuple[list[int], object]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise ServerUnreachable("down")
        return "ok"

    return calls, call


def test_retry_recovers_with_growing_jittered_delays() -> None:
    calls, call = _flaky(3)
    waits: list[float] = []
    policy = RetryPolicy(attempts=5, base_s=1.0, cap_s=30.0, budget_s=600)
    assert retrying(call, policy, "x", sleep=waits.append, rng=random.Random(1)) == "ok"
    assert len(calls) == 4
    for n, wait in enumerate(waits, start=1):
        assert 2 ** (n - 1) / 2 <= wait <= 2 ** (n - 1)


def test_retry_gives_up_after_attempts_and_never_retries_refusals() -> None:
    calls, call = _flaky(100)
    with pytest.raises(ServerUnreachable):
        retrying(call, RetryPolicy(attempts=3), "x", sleep=lambda _s: None)
    assert len(calls) == 3

    refusals: list[int] = []

    def refused() -> None:
        refusals.append(1)
        raise QuotaExceeded("full")

    with pytest.raises(QuotaExceeded):
        retrying(refused, RetryPolicy(), "x", sleep=lambda _s: None)
    assert len(refusals) == 1


def test_retry_respects_the_time_budget_and_retry_after() -> None:
    calls, call = _flaky(100)
    with pytest.raises(ServerUnreachable):  # the first wait (>= 5 s) would exceed 4 s
        retrying(call, RetryPolicy(attempts=10, base_s=10, budget_s=4), "x",
                 sleep=lambda _s: None)
    assert len(calls) == 1
    policy = RetryPolicy(base_s=0.1, cap_s=20)
    assert policy.delay(1, 12.0, random.Random(0)) == 12.0
    assert policy.delay(1, 99.0, random.Random(0)) == 20.0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_limiter_holds_the_average_rate() -> None:
    clock = _Clock()
    limiter = RateLimiter(1000, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        limiter.take(100)
    assert clock.now == pytest.approx(5.0)


@pytest.mark.parametrize(("text", "rate"), [("500K", 500 * 1024), ("2M", 2 * 1024**2),
                                            ("1.5MiB/s", int(1.5 * 1024**2)),
                                            ("800000", 800000)])
def test_rates_parse(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "1K", "-5M"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


def test_agent_and_server_sealing_interoperate() -> None:
    """The agent seals to the org key; the server opens and re-seals to the device."""
    org_private, org_public = sealing.new_key_pair()
    device_private, device_public = sealing.new_key_pair()
    master = bytes(range(32))
    deposited = sealing.seal(org_public, master, sealing.ORG_ESCROW)
    stored = json.loads(escrow.check_sealed(deposited))
    opened = escrow.open_sealed(org_private, stored, escrow.ORG_ESCROW)
    for_device = escrow.seal(device_public, opened, escrow.DEVICE)
    assert sealing.open_sealed(device_private, for_device, sealing.DEVICE) == master
    with pytest.raises(IntegrityError):  # bound to its purpose
        sealing.open_sealed(device_private, for_device, sealing.ORG_ESCROW)
    other_private, _ = sealing.new_key_pair()
    with pytest.raises(IntegrityError):
        sealing.open_sealed(other_private, for_device, sealing.DEVICE)


def test_server_secret_is_private_and_stable(tmp_path: Path) -> None:
    first = escrow.server_secret(tmp_path)
    assert escrow.server_secret(tmp_path) == first and len(first) == 32
    assert stat.S_IMODE((tmp_path / escrow.SECRET_FILE).stat().st_mode) == 0o600
    public, sealed = escrow.new_org_key_pair(first, "org1")
    private = escrow.org_private_key(first, "org1", sealed)
    assert len(private) == 32 and len(public) == 44
    with pytest.raises(escrow.EscrowDamaged):
        escrow.org_private_key(first, "another-org", sealed)  # bound to its organization


def test_secret_files_are_owner_only_and_profiles_round_trip(tmp_path: Path) -> None:
    store = SecretStore(tmp_path, "file")
    store.set("device-token", "cdt_secret")
    assert store.get("device-token") == "cdt_secret"
    path = tmp_path / "secrets" / "device-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    store.delete("device-token")
    assert store.get("device-token") is None
    profile = Profile(url="https://s", device_id="d", device_guid="g", device_name="pc",
                      username="u", user_id="i", org_id="o", org_name="Org",
                      registered_at="2026-01-01T00:00:00+00:00")
    profile.with_key("standard", "k" * 32).save(tmp_path)
    loaded = Profile.load(tmp_path)
    assert loaded is not None and loaded.key_level == "standard"
    assert "cdt_" not in (tmp_path / "server.json").read_text()


class _CountingDest:
    """A Destination double holding one data pack in memory; counts reads."""

    description = "memory"

    def __init__(self, pack: bytes) -> None:
        self.pack, self.reads = pack, []

    def read(self, kind: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self.reads.append((kind, offset, length))
        end = len(self.pack) if length is None else offset + length
        return self.pack[offset:end]


def test_small_reads_come_from_one_window_and_big_reads_pass_through() -> None:
    from agent.dest.readcache import WindowedReads

    pack = random.Random(3).randbytes(3000)
    inner = _CountingDest(pack)
    reads = WindowedReads(inner, window=1000, small=100, capacity=2)  # type: ignore[arg-type]
    for offset in range(0, 900, 50):  # many small blobs side by side: one round trip
        assert reads.read("data", "p", offset, 40) == pack[offset:offset + 40]
    assert inner.reads == [("data", 0, 1000)]
    assert reads.read("data", "p", 980, 40) == pack[980:1020]  # crosses a window edge
    assert reads.read("data", "p", 0, 500) == pack[:500]  # too big to window
    assert reads.read("index", "p", 0, 10) == pack[:10]  # only data packs are windowed
    assert len(inner.reads) == 4
    reads.read("data", "p", 2990, 10)  # the short last window of the pack
    assert reads.read("data", "p", 2995, 5) == pack[2995:]
    reads.read("data", "p", 1500, 10)  # a third window evicts the oldest (capacity 2)
    reads.read("data", "p", 10, 10)
    assert inner.reads[-1] == ("data", 0, 1000)


def test_secrets_go_to_a_real_os_keyring_when_there_is_one(tmp_path: Path) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            self.items: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.items.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.items[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            from keyring.errors import PasswordDeleteError

            if self.items.pop((service, username), None) is None:
                raise PasswordDeleteError(username)

    saved = keyring.get_keyring()
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    try:
        store = SecretStore(tmp_path / "home-a", "auto")
        other = SecretStore(tmp_path / "home-b", "auto")
        assert store.uses_keyring and store.where == "the OS keyring"
        store.set("archive-key", "k1")
        other.set("archive-key", "k2")  # two agent homes never share an entry
        assert (store.get("archive-key"), other.get("archive-key")) == ("k1", "k2")
        assert not (tmp_path / "home-a" / "secrets").exists()  # nothing on disk
        store.delete("archive-key")
        store.delete("archive-key")  # deleting twice is fine
        assert store.get("archive-key") is None and len(memory.items) == 1
        assert not SecretStore(tmp_path / "home-a", "file").uses_keyring
    finally:
        keyring.set_keyring(saved)
