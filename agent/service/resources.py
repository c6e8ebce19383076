"""Resource rules: is someone at the computer, on battery, on a metered network?

Each probe returns ``None`` when the OS does not say. The policy turns probe
results and ``[resources]`` settings into a decision: pause (and why), the
upload limit and how many chunking threads a run may use.

- Presence: idle time from the OS where it reports one (Windows
  ``GetLastInputInfo``, macOS ``HIDIdleTime``); on Linux a local graphical or
  console login session counts as present (systemd-logind's session files),
  and no session at all counts as away.
- Battery: Linux ``/sys/class/power_supply``, Windows ``GetSystemPowerStatus``,
  macOS ``pmset``.
- Metered network: NetworkManager (``nmcli``) on Linux; unknown elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.service.config import ResourceSettings
from agent.service.durations import parse_duration


@dataclass(frozen=True)
class Readings:
    idle_s: float | None  # seconds since the last input; None when the OS does not say
    present: bool | None  # someone logged in at the computer (Linux); None when unknown
    on_battery: bool | None
    battery_percent: int | None
    metered: bool | None


@dataclass(frozen=True)
class Decision:
    pause_reason: str  # "" when backups may run
    user_present: bool
    upload_limit_bps: int  # 0 = unlimited
    workers: int


def decide(settings: ResourceSettings, r: Readings, cpu_count: int) -> Decision:
    """Apply the ``[resources]`` rules to the current readings."""
    away_after = parse_duration(settings.away_after)
    present = r.idle_s < away_after if r.idle_s is not None else bool(r.present)
    share = settings.cpu_present if present else settings.cpu_away
    limit_kib = settings.upload_limit_present if present else settings.upload_limit_away
    reason = ""
    if (settings.battery_min and r.on_battery and r.battery_percent is not None
            and r.battery_percent < settings.battery_min):
        reason = (f"on battery at {r.battery_percent} %, below the "
                  f"{settings.battery_min} % set in resources.battery_min")
    elif settings.pause_on_metered and r.metered:
        reason = "on a metered network (resources.pause_on_metered)"
    workers = max(1, round(cpu_count * share / 100))
    return Decision(reason, present, limit_kib * 1024, workers)


def read_all(sysfs: Path = Path("/sys/class/power_supply"),
             sessions: Path = Path("/run/systemd/sessions"),
             want_metered: bool = False) -> Readings:
    """Probe the OS (cheap; ``nmcli`` is only run when ``want_metered``)."""
    on_battery, percent = battery(sysfs)
    return Readings(idle_seconds(), linux_session_present(sessions) if sys.platform.startswith(
        "linux") else None, on_battery, percent, metered() if want_metered else None)


def battery(sysfs: Path) -> tuple[bool | None, int | None]:
    if sys.platform.startswith("linux"):
        return linux_battery(sysfs)
    if os.name == "nt":
        return _windows_battery()
    if sys.platform == "darwin":
        return _mac_battery()
    return None, None


def linux_battery(sysfs: Path) -> tuple[bool | None, int | None]:
    """(discharging, lowest capacity %) over the batteries in ``sysfs``; (None, None) if none."""
    found: list[tuple[bool, int]] = []
    for supply in sorted(sysfs.glob("*")):
        try:
            if (supply / "type").read_text().strip() != "Battery":
                continue
            status = (supply / "status").read_text().strip()
            found.append((status == "Discharging", int((supply / "capacity").read_text())))
        except (OSError, ValueError):
            continue
    if not found:
        return None, None
    return any(d for d, _ in found), min(p for _, p in found)


def linux_session_present(sessions: Path) -> bool:
    """True if systemd-logind lists an active local graphical or console session."""
    for path in sessions.glob("*"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            fields = dict(line.split("=", 1) for line in path.read_text().splitlines()
                          if "=" in line)
            local = fields.get("REMOTE", "0") != "1"
            if (fields.get("ACTIVE") == "1" and local
                    and fields.get("TYPE") in ("x11", "wayland", "mir", "tty")):
                return True
    return False


def idle_seconds() -> float | None:
    if os.name == "nt":
        return _windows_idle()
    if sys.platform == "darwin":
        return _mac_idle()
    return None


def metered() -> bool | None:
    """NetworkManager's verdict for the primary connection, if it is running here."""
    nmcli = shutil.which("nmcli")
    if not nmcli:
        return None
    try:
        out = subprocess.run([nmcli, "-t", "-f", "GENERAL.METERED", "dev", "show"],
                             capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    values = [line.split(":", 1)[1] for line in out.splitlines() if ":" in line]
    if not values:
        return None
    return any(v.startswith("yes") for v in values)


def _windows_idle() -> float | None:  # pragma: no cover - Windows only
    import ctypes

    class LastInput(ctypes.Structure):
        _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint)]

    info = LastInput()
    info.cbSize = ctypes.sizeof(info)
    if not ctypes.windll.user32.GetLastInputInfo(ctypes.byref(info)):  # type: ignore[attr-defined]
        return None  # no interactive session (a service as SYSTEM): away
    return (ctypes.windll.kernel32.GetTickCount() - info.dwTime) / 1000.0  # type: ignore


def _windows_battery() -> tuple[bool | None, int | None]:  # pragma: no cover - Windows only
    import ctypes

    class PowerStatus(ctypes.Structure):
        _fields_ = [("ACLineStatus", ctypes.c_byte), ("BatteryFlag", ctypes.c_byte),
                    ("BatteryLifePercent", ctypes.c_byte), ("Reserved1", ctypes.c_byte),
                    ("BatteryLifeTime", ctypes.c_ulong), ("BatteryFullLifeTime", ctypes.c_ulong)]

    status = PowerStatus()
    if not ctypes.windll.kernel32.GetSystemPowerStatus(ctypes.byref(status)):  # type: ignore
        return None, None
    if status.BatteryFlag & 128 or status.BatteryLifePercent == -1:  # no system battery
        return None, None
    return status.ACLineStatus == 0, int(status.BatteryLifePercent)


def _mac_idle() -> float | None:  # pragma: no cover - macOS only
    out = _run(["ioreg", "-c", "IOHIDSystem"])
    m = re.search(r'"HIDIdleTime" = (\d+)', out)
    return int(m.group(1)) / 1e9 if m else None


def _mac_battery() -> tuple[bool | None, int | None]:  # pragma: no cover - macOS only
    out = _run(["pmset", "-g", "batt"])
    m = re.search(r"(\d+)%", out)
    if not m:
        return None, None
    return "Battery Power" in out, int(m.group(1))


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=5,
                              check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
