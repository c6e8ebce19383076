"""The service configuration: validation on load, edits, the TOML writer, the CLI verbs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.cli import main
from agent.service import config as cfgmod
from agent.service import tomlwrite
from agent.service.config import ConfigError, ServiceConfig, SetConfig


def _load_text(tmp_path: Path, text: str) -> ServiceConfig:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return cfgmod.load(path)


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    config = cfgmod.load(tmp_path / "none.toml")
    assert config == ServiceConfig()
    assert config.resources.cpu_present == 25 and config.sets == ()


@pytest.mark.parametrize(("text", "message"), [
    ("[servce]\n", "unknown section 'servce'"),
    ("[service]\nlog_level = \"loud\"\n", "service.log_level must be one of debug, info"),
    ("[resources]\ncpu_away = 0\n", "resources.cpu_away must be between 1 and 100"),
    ("[resources]\ncpu_away = \"lots\"\n", "resources.cpu_away must be a whole number"),
    ("[resources]\npause_on_metered = 1\n", "must be true or false"),
    ("[resources]\nspeed = 3\n", "resources.speed is not a setting"),
    ("[sets.docs]\ndest = \"/x\"\n", "sets.docs.paths is required"),
    ("[sets.docs]\npaths = []\n", "must name at least one folder"),
    ("[sets.docs]\npaths = [\"relative/dir\"]\n", "must be an absolute path"),
    ("[sets.docs]\npaths = [\"/a\"]\nevery = \"soon\"\n", "like 10s, 15m, 1h"),
    ("[sets.docs]\npaths = [\"/a\"]\nwindows = [\"18:00\"]\n", "like 18:00-07:00"),
    ("[sets.docs]\npaths = [\"/a\"]\nwindows = [\"25:00-07:00\"]\n", "time of day"),
    ("[sets.docs]\npaths = [\"/a\"]\nverify_at = \"3am\"\n", "time of day like 03:00"),
    ("[sets.docs]\npaths = [\"/a\"]\n[sets.docs.retention]\nhourly = \"often\"\n",
     "Retention hourly must be a duration"),
    ("[sets.\"my docs\"]\npaths = [\"/a\"]\n", "a set name may use letters"),
    ("[sets.docs\npaths = 1\n", "is not valid TOML"),
])
def test_invalid_files_are_refused_with_the_key_named(tmp_path: Path, text: str,
                                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        _load_text(tmp_path, text)
    assert str(tmp_path / "config.toml") in str(err.value)


def test_set_value_coerces_and_validates() -> None:
    config = cfgmod.add_set(ServiceConfig(), SetConfig("docs", ("/home/ann",)))
    config = cfgmod.set_value(config, "resources.cpu_away", "50")
    config = cfgmod.set_value(config, "resources.pause_on_metered", "yes")
    config = cfgmod.set_value(config, "sets.docs.exclude", "*.iso, *.vmdk")
    config = cfgmod.set_value(config, "sets.docs.windows", '["18:00-07:00"]')
    config = cfgmod.set_value(config, "sets.docs.retention.daily", "30d")
    assert config.resources.cpu_away == 50 and config.resources.pause_on_metered is True
    docs = config.find_set("docs")
    assert docs.exclude == ("*.iso", "*.vmdk") and docs.windows == ("18:00-07:00",)
    assert docs.retention == {"daily": "30d"}
    assert cfgmod.get_value(config, "sets.docs.every") == "15m"
    for key, value, message in [("resources.cpu_away", "0", "between 1 and 100"),
                                ("resources.nope", "1", "not a setting"),
                                ("resources", "1", "is a section"),
                                ("sets.docs.every", "often", "duration"),
                                ("sets.other.every", "1h", "not a setting")]:
        with pytest.raises(ConfigError, match=message):
            cfgmod.set_value(config, key, value)


def test_add_and_remove_sets() -> None:
    config = cfgmod.add_set(ServiceConfig(), SetConfig("docs", ("/a",)))
    with pytest.raises(ConfigError, match="already exists"):
        cfgmod.add_set(config, SetConfig("docs", ("/b",)))
    assert cfgmod.remove_set(config, "docs").sets == ()
    with pytest.raises(cfgmod.UsageError, match="no backup set named 'x'"):
        cfgmod.remove_set(config, "x")


def test_save_round_trips_and_is_private(tmp_path: Path) -> None:
    config = cfgmod.add_set(ServiceConfig(), SetConfig(
        "docs", ("/home/ann/Documents", "/home/ann/Bilder \"Ürlaub\""), windows=("18:00-07:00",),
        exclude=("*.iso",), retention={"daily": "30d"}, passphrase_file="/root/pw"))
    path = tmp_path / "config.toml"
    cfgmod.save(config, path)
    assert cfgmod.load(path) == config
    assert path.stat().st_mode & 0o777 == 0o600


def test_redaction_hides_secret_looking_values() -> None:
    config = cfgmod.add_set(ServiceConfig(), SetConfig("docs", ("/a",), passphrase_file="/pw"))
    doc = cfgmod.redacted_doc(config)
    assert doc["sets"]["docs"]["passphrase_file"] == "<redacted>"
    assert doc["service"]["passphrase_file"] == ""  # empty: nothing to hide
    assert doc["sets"]["docs"]["paths"] == ["/a"]


_keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
_values = st.one_of(st.text(st.characters(blacklist_categories=("Cs",))), st.integers(),
                    st.booleans(), st.lists(st.text(st.characters(blacklist_categories=("Cs",)))))


@given(st.dictionaries(_keys, st.one_of(_values, st.dictionaries(_keys, _values, min_size=1))))
def test_toml_writer_round_trips(doc: dict) -> None:
    assert tomllib.loads(tomlwrite.dumps(doc)) == doc


def test_cli_sets_and_config_verbs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("CAIRN_HOME", str(tmp_path / "home"))
    (tmp_path / "pw").write_text("secret phrase\n")
    (tmp_path / "pw").chmod(0o644)
    assert main(["sets", "add", "docs", str(tmp_path), "--passphrase-file",
                 str(tmp_path / "pw")]) == 2
    assert "readable by other users" in capsys.readouterr().err
    (tmp_path / "pw").chmod(0o600)
    assert main(["sets", "add", "docs", str(tmp_path), "--every", "30m", "--exclude", "*.iso",
                 "--passphrase-file", str(tmp_path / "pw")]) == 0
    assert main(["sets", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert listed["docs"]["every"] == "30m" and listed["docs"]["exclude"] == ["*.iso"]
    assert main(["config", "set", "sets.docs.every", "2h"]) == 0
    assert main(["config", "get", "sets.docs.every"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2h"
    assert main(["config", "set", "resources.battery_min", "200"]) == 2
    assert "between 0 and 100" in capsys.readouterr().err
    assert main(["config", "show"]) == 0
    assert "[sets.docs]" in capsys.readouterr().out
    assert main(["sets", "remove", "docs"]) == 0
    assert main(["sets", "show", "docs"]) == 2
