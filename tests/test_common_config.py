"""apps.common.config: strict typed configs, presets, JSON round trip, merge order."""

from __future__ import annotations

import dataclasses
import json

import pytest

from apps.common.config import AppConfig
from apps.common.errors import ConfigError, UsageError


@dataclasses.dataclass(frozen=True)
class DemoConfig(AppConfig):
    data: str = "builtin:demo"
    model: str = "lstm"
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 1e-3
    limit: int | None = None
    bidirectional: bool = False
    layers: tuple[int, ...] = (4,)

    @classmethod
    def tiny(cls):
        return cls(epochs=1, batch_size=4)

    @classmethod
    def small(cls):
        return cls()

    @classmethod
    def base(cls):
        return cls(epochs=10, batch_size=64, layers=(64, 64))

    def validate(self):
        if self.epochs < 1:
            raise ConfigError(f"config: key 'epochs' must be >= 1, got {self.epochs}")


def test_unknown_key_is_rejected_with_its_name_and_a_suggestion():
    with pytest.raises(ConfigError) as info:
        DemoConfig.from_dict({"epocs": 3})
    message = str(info.value)
    assert "unknown key 'epocs'" in message and "did you mean 'epochs'" in message
    assert isinstance(info.value, UsageError)


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("epochs", "3", "key 'epochs' must be int, got str '3'"),
        ("epochs", 2.5, "key 'epochs' must be int, got float 2.5"),
        ("epochs", True, "key 'epochs' must be int, got bool True"),
        ("bidirectional", 1, "key 'bidirectional' must be bool, got int 1"),
        ("limit", "all", "key 'limit' must be int | null, got str 'all'"),
        ("layers", [4, "x"], "key 'layers' must be list of int, got list [4, 'x']"),
        ("model", None, "key 'model' must be str, got NoneType None"),
    ],
)
def test_wrong_types_are_rejected_naming_the_key(key, value, expected):
    with pytest.raises(ConfigError) as info:
        DemoConfig.from_dict({key: value})
    assert expected in str(info.value)


def test_accepted_values_are_converted():
    cfg = DemoConfig.from_dict({"learning_rate": 1, "limit": None, "layers": [8, 16]})
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)
    assert cfg.layers == (8, 16) and cfg.limit is None
    assert cfg.to_dict()["layers"] == [8, 16]


def test_validate_runs_after_loading():
    with pytest.raises(ConfigError, match="'epochs' must be >= 1, got 0"):
        DemoConfig.from_dict({"epochs": 0})
    with pytest.raises(ConfigError, match="'epochs' must be >= 1"):
        DemoConfig.tiny().replace(epochs=-1)


def test_json_round_trip_and_run_dir_config(tmp_path):
    cfg = DemoConfig.base().replace(model="gru", limit=100)
    path = tmp_path / "cfg.json"
    cfg.save_json(path)
    assert DemoConfig.load_json(path) == cfg
    # a run dir's config.json ({"app", "format", "config"}) is accepted by --config
    run_cfg = tmp_path / "config.json"
    run_cfg.write_text(json.dumps({"app": "apps.demo", "format": 1, "config": {"epochs": 7}}))
    assert DemoConfig.load_json(run_cfg, base=DemoConfig.tiny()).epochs == 7


def test_bad_json_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"epochs": 3,,}')
    with pytest.raises(ConfigError, match=r"not valid JSON: .* at line 1 column 14"):
        DemoConfig.load_json(bad)
    with pytest.raises(ConfigError, match="no such file"):
        DemoConfig.load_json(tmp_path / "missing.json")
    arr = tmp_path / "arr.json"
    arr.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        DemoConfig.load_json(arr)


def test_resolve_precedence_preset_then_file_then_flags(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 5, "model": "gru"}))
    cfg = DemoConfig.resolve("base", path, {"model": "bilstm", "batch_size": None})
    assert (cfg.epochs, cfg.model, cfg.batch_size, cfg.layers) == (5, "bilstm", 64, (64, 64))
    assert DemoConfig.resolve("tiny").batch_size == 4
    with pytest.raises(ConfigError, match="--size: unknown size 'huge'"):
        DemoConfig.resolve("huge")


def test_differences():
    a, b = DemoConfig.tiny(), DemoConfig.tiny().replace(epochs=3, model="gru")
    assert a.differences(b) == {"epochs": (1, 3), "model": ("lstm", "gru")}
