"""``cairn support-bundle``: one zip with what support always asks for.

Contents: ``manifest.json`` (product, agent version, OS and version, device
GUID, username, host name, mode, destination types, whether a hosted server
is used), ``description.txt`` (the user's own words), ``config.toml`` with
secret-looking values replaced, ``status.json`` (from the running service, or
the stored state), ``errors.txt`` (each set's last error and the recent
warnings and errors from the logs) and ``logs/`` (the tail of each log file).

Never included: passphrases, tokens, key files, archive objects or the
content of any backed-up file. Known secret values (the passphrase files'
contents, ``CAIRN_PASSPHRASE``, the API token) are also scrubbed from the logs.
"""

from __future__ import annotations

import getpass
import json
import platform
import re
import socket
import time
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from agent import __version__
from agent.service import config as cfgmod
from agent.service import tomlwrite
from agent.service.archives import SERVER, dest_spec
from agent.service.config import ServiceConfig
from agent.service.layout import ServiceLayout
from agent.service.secrets import SecretFilter

LOG_TAIL_BYTES = 1_000_000
ERROR_LINES = 100
_LEVEL_RE = re.compile(r" (WARNING|ERROR|CRITICAL) ")
_TOML_SECRET_LINE = re.compile(r"^(\s*[\"']?[^=\s\"']*(?:pass|secret|token|key)[^=\"']*[\"']?"
                               r"\s*=\s*)(.+)$", re.IGNORECASE | re.MULTILINE)


def default_name(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"cairn-support-{socket.gethostname()}-{stamp}.zip"


def build(layout: ServiceLayout, out: Path, description: str, status_doc: dict | None,
          env: Mapping[str, str]) -> list[str]:
    """Write the bundle to ``out``; returns the names of its entries."""
    config, config_text = _config(layout)
    scrubber = _scrubber(layout, config, env)
    entries: dict[str, str] = {
        "manifest.json": json.dumps(_manifest(layout, config, status_doc), indent=2),
        "config.toml": config_text,
        "status.json": json.dumps(status_doc or _stored_state(layout), indent=2),
        "errors.txt": _errors(layout, status_doc),
    }
    if description.strip():
        entries["description.txt"] = description.strip() + "\n"
    for path in _log_files(layout):
        entries[f"logs/{path.name}"] = _tail(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, text in entries.items():
            zf.writestr(name, scrubber.scrub(text))
    return sorted(entries)


def _config(layout: ServiceLayout) -> tuple[ServiceConfig | None, str]:
    try:
        config = cfgmod.load(layout.config_file)
    except cfgmod.ConfigError as exc:
        try:
            raw = layout.config_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            raw = ""
        redacted = _TOML_SECRET_LINE.sub(lambda m: m.group(1) + '"<redacted>"', raw)
        return None, f"# The configuration does not load: {exc}\n{redacted}"
    return config, tomlwrite.dumps(cfgmod.redacted_doc(config))


def _scrubber(layout: ServiceLayout, config: ServiceConfig | None,
              env: Mapping[str, str]) -> SecretFilter:
    scrubber = SecretFilter()
    for name in ("CAIRN_PASSPHRASE", "CAIRN_NEW_PASSPHRASE", "CAIRN_PASSWORD"):
        if env.get(name):
            scrubber.add(env[name])
    files = [layout.token_file]
    if config is not None:
        files += [Path(f) for f in [config.service.passphrase_file,
                                    *(s.passphrase_file for s in config.sets)] if f]
    for file in files:
        try:  # read even a file the service would refuse: its content must not leak
            scrubber.add(file.expanduser().read_text(encoding="utf-8").rstrip("\r\n"))
        except (OSError, UnicodeDecodeError):
            continue  # unreadable here, so it cannot leak from here either
    return scrubber


def _manifest(layout: ServiceLayout, config: ServiceConfig | None,
              status_doc: dict | None) -> dict:
    dests = []
    if config is not None:
        dests = [{"set": c.name, "type": dest_spec(c, layout).kind} for c in config.sets]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return {
        "product": "Cairn", "agent_version": __version__,
        "os": platform.system(), "os_release": platform.release(),
        "os_version": platform.version(), "platform": platform.platform(),
        "machine": platform.machine(), "python": platform.python_version(),
        "device_id": layout.device_id(), "username": user, "hostname": socket.gethostname(),
        "mode": layout.mode, "destinations": dests,
        "hosted_server": any(d["type"] == SERVER for d in dests),
        "service_running": status_doc is not None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _stored_state(layout: ServiceLayout) -> dict:
    try:
        return {"state": "stopped", "stored": json.loads(
            (layout.state_dir / "state.json").read_text(encoding="utf-8"))}
    except (OSError, ValueError):
        return {"state": "stopped"}


def _errors(layout: ServiceLayout, status_doc: dict | None) -> str:
    lines = ["# Last error per backup set"]
    stored = _stored_state(layout).get("stored", {})
    for name, body in sorted((stored.get("sets") or {}).items()):
        lines.append(f"{name}: {body.get('last_result')} {body.get('last_error') or ''}".rstrip())
    if status_doc:
        lines += [f"status: {status_doc.get('state')} {status_doc.get('why', '')}".rstrip()]
    lines.append("")
    lines.append(f"# Last {ERROR_LINES} warnings and errors from the logs")
    found: list[str] = []
    for path in reversed(_log_files(layout)):
        found += [line for line in _tail(path).splitlines() if _LEVEL_RE.search(line)]
    lines += found[-ERROR_LINES:]
    return "\n".join(lines) + "\n"


def _log_files(layout: ServiceLayout) -> list[Path]:
    if not layout.logs.is_dir():
        return []
    return sorted((p for p in layout.logs.iterdir() if p.is_file() and ".log" in p.name),
                  key=lambda p: p.stat().st_mtime)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            return f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(could not read {path.name}: {exc.strerror})\n"
