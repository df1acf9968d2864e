"""llmux keys add / list / remove: strong keys, mode 0600, other entries kept."""

from __future__ import annotations

import re
import shutil
import stat

import pytest
import yaml

from llmux.cli import main
from llmux.config import load_config
from llmux.keys import KeyFileError, add_key, generate_key, list_keys

from .helpers import REPO

KEY_RE = re.compile(r"^llmux-[A-Za-z0-9_-]{43}$")
EXISTING = [{"name": "open-webui", "key": "existing-open-webui-key-0000"},
            {"name": "ops", "key": "existing-ops-admin-key-00000", "admin": True}]


@pytest.fixture
def config(tmp_path):
    directory = tmp_path / "config"
    directory.mkdir()
    shutil.copy(REPO / "config/demo/models.yaml", directory / "models.yaml")
    keys = directory / "api_keys.yaml"
    keys.write_text("# hand-written\n" + yaml.safe_dump({"keys": EXISTING}, sort_keys=False))
    keys.chmod(0o644)
    return directory


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_add_writes_a_strong_key_with_mode_0600(config, capsys):
    assert main(["keys", "add", "opencode", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert KEY_RE.match(key), key  # 256 bits from secrets.token_urlsafe
    assert "shown only now" in err and key not in err
    path = config / "api_keys.yaml"
    assert mode(path) == 0o600
    entries = yaml.safe_load(path.read_text())["keys"]
    assert entries[:2] == EXISTING  # the others are kept, in order, admin flag included
    assert entries[2] == {"name": "opencode", "key": key}
    loaded = load_config(config)  # the result is a valid configuration
    assert [k.name for k in loaded.keys] == ["open-webui", "ops", "opencode"]
    assert not list(config.glob(".api_keys.yaml.*"))  # no temporary file left


def test_add_admin_and_list_without_secrets(config, capsys):
    assert main(["keys", "add", "root-ops", "--admin", "--config", str(config)]) == 0
    key = capsys.readouterr().out.strip()
    assert main(["keys", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.split("\n")[:3] == ["open-webui  -", "ops         admin", "root-ops    admin"]
    assert key not in out and "existing" not in out


def test_config_dir_from_the_environment(config, monkeypatch, capsys):
    monkeypatch.setenv("LLMUX_CONFIG_DIR", str(config))
    assert main(["keys", "add", "whisper-remote"]) == 0
    assert "whisper-remote" in (config / "api_keys.yaml").read_text()


def test_first_key_creates_the_file(tmp_path, capsys):
    directory = tmp_path / "fresh"
    assert main(["keys", "add", "open-webui", "--config", str(directory)]) == 0
    path = directory / "api_keys.yaml"
    assert mode(path) == 0o600
    assert [i.name for i in list_keys(path)] == ["open-webui"]


def test_duplicate_name_is_refused(config, capsys):
    before = (config / "api_keys.yaml").read_text()
    assert main(["keys", "add", "open-webui", "--config", str(config)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (config / "api_keys.yaml").read_text() == before


def test_remove(config, capsys):
    assert main(["keys", "remove", "ops", "--config", str(config)]) == 0
    assert [i.name for i in list_keys(config / "api_keys.yaml")] == ["open-webui"]
    assert mode(config / "api_keys.yaml") == 0o600
    assert main(["keys", "remove", "nobody", "--config", str(config)]) == 1
    assert "known: open-webui" in capsys.readouterr().err


def test_invalid_names_and_files(config, tmp_path):
    with pytest.raises(KeyFileError, match="invalid key name"):
        add_key(config / "api_keys.yaml", "has space")
    broken = tmp_path / "broken.yaml"
    broken.write_text("keys:\n  - name: x\n    key: short\n")
    with pytest.raises(KeyFileError, match="schema"):
        add_key(broken, "other")


def test_keys_are_unique_and_random():
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(KEY_RE.match(k) for k in keys)
