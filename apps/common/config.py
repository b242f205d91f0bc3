"""Typed app configs: presets, strict loading from JSON, merging with command-line flags.

An app config is a frozen dataclass that subclasses :class:`AppConfig` and provides the presets
``tiny()`` (tests, seconds), ``small()`` (the main job, minutes on a laptop) and ``base()`` (a
real run). Loading is strict: an unknown key or a value of the wrong type is a
:class:`~apps.common.errors.ConfigError` naming the key, never silently ignored.

Precedence when a command resolves its config: preset (``--size``) < ``--config FILE.json`` <
explicit flags.

Example:
    >>> @dataclasses.dataclass(frozen=True)
    ... class MyConfig(AppConfig):
    ...     epochs: int = 1
    ...     @classmethod
    ...     def tiny(cls): return cls(epochs=1)
    ...     @classmethod
    ...     def small(cls): return cls(epochs=3)
    ...     @classmethod
    ...     def base(cls): return cls(epochs=10)
    >>> MyConfig.from_dict({"epocs": 2})
    Traceback (most recent call last):
    ConfigError: config: unknown key 'epocs' (did you mean 'epochs'? known keys: epochs)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from apps.common.errors import ConfigError
from apps.common.rundir import atomic_write_json

if TYPE_CHECKING:
    from typing_extensions import Self

SIZES = ("tiny", "small", "base")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = _type_name(args[0]) if args else "any"
        return f"list of {inner}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, converted) for ``value`` against the annotation ``tp`` (JSON-level types)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if tp is type(None):
        return value is None, None
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, converted = _coerce(value, arg)
            if ok:
                return True, converted
        return False, None
    if origin is typing.Literal:
        return value in typing.get_args(tp) and not isinstance(value, bool), value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, None
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        out = []
        for item in value:
            ok, converted = _coerce(item, args[0]) if args else (True, item)
            if not ok:
                return False, None
            out.append(converted)
        return True, tuple(out) if origin is tuple else out
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else None
    if tp is str:
        return isinstance(value, str), value
    return isinstance(value, tp), value


@dataclasses.dataclass(frozen=True)
class AppConfig:
    """Base of every app config (subclass it as a frozen dataclass).

    Subclasses provide the presets ``tiny()``, ``small()`` and ``base()`` and may override
    :meth:`validate` to check ranges (raise :class:`ConfigError` naming the key).
    ``RESUMABLE`` names the fields a resumed run may change (e.g. ``epochs``).
    """

    RESUMABLE: ClassVar[tuple[str, ...]] = ("epochs",)

    # ----------------------------------------------------------------- presets
    @classmethod
    def tiny(cls) -> Self:
        raise NotImplementedError(f"{cls.__name__} must define tiny()")

    @classmethod
    def small(cls) -> Self:
        raise NotImplementedError(f"{cls.__name__} must define small()")

    @classmethod
    def base(cls) -> Self:
        raise NotImplementedError(f"{cls.__name__} must define base()")

    @classmethod
    def preset(cls, size: str) -> Self:
        """The preset named ``size`` (``tiny``, ``small`` or ``base``)."""
        if size not in SIZES:
            raise ConfigError(f"--size: unknown size {size!r} (choose from {', '.join(SIZES)})")
        return getattr(cls, size)()

    # ------------------------------------------------------------ dict <-> obj
    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """Field name -> resolved type annotation."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def check_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> dict[str, Any]:
        """Validate keys and value types of ``data``; return it with values converted.

        Raises:
            ConfigError: for a key that is not a field, or a value of the wrong type; the
                message names ``source`` and the key.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        types_ = cls.field_types()
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key not in types_:
                close = difflib.get_close_matches(str(key), list(types_), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    f"{source}: unknown key {key!r} ({hint}known keys: {', '.join(types_)})"
                )
            ok, converted = _coerce(value, types_[key])
            if not ok:
                raise ConfigError(
                    f"{source}: key {key!r} must be {_type_name(types_[key])}, "
                    f"got {type(value).__name__} {value!r}"
                )
            out[key] = converted
        return out

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base: Self | None = None, source: str = "config"
    ) -> Self:
        """Build a config from ``data`` over ``base`` (default: the dataclass defaults).

        Unknown keys and wrong types raise :class:`ConfigError`; then :meth:`validate` runs.
        """
        values = cls.check_dict(data, source=source)
        if base is None:
            obj = cls(**values)
        else:
            obj = dataclasses.replace(base, **values)
        obj.validate()
        return obj

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (type-checked and validated)."""
        return type(self).from_dict(changes, base=self, source="config")

    def validate(self) -> None:
        """Check value ranges; subclasses raise :class:`ConfigError` naming the key."""

    def differences(self, other: AppConfig) -> dict[str, tuple[Any, Any]]:
        """``{key: (self value, other value)}`` for the fields that differ."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b.get(k)}

    # -------------------------------------------------------------------- JSON
    @classmethod
    def read_json_dict(cls, path: str | os.PathLike) -> dict[str, Any]:
        """Read a JSON object from ``path`` (a config file or a run dir's ``config.json``)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"--config: no such file: {path}") from None
        except IsADirectoryError:
            raise ConfigError(f"--config: {path} is a folder, not a JSON file") from None
        except OSError as e:
            raise ConfigError(f"--config: cannot read {path}: {e.strerror}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"--config: {path} is not UTF-8 (bad byte at offset {e.start})"
            ) from None
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"--config: {path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
            ) from None
        if isinstance(data, dict) and isinstance(data.get("config"), dict) and "app" in data:
            data = data["config"]  # a run dir's config.json: {"app", "format", "config"}
        if not isinstance(data, dict):
            raise ConfigError(f"--config: {path} must hold a JSON object")
        return data

    @classmethod
    def load_json(cls, path: str | os.PathLike, *, base: Self | None = None) -> Self:
        """Load a config from a JSON file (keys over ``base``, strictly checked)."""
        return cls.from_dict(cls.read_json_dict(path), base=base, source=f"--config {path}")

    def save_json(self, path: str | os.PathLike) -> None:
        """Write this config as JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    # ------------------------------------------------------------------ merging
    @classmethod
    def resolve(
        cls,
        size: str,
        config_file: str | os.PathLike | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Self:
        """Preset ``size``, then the keys of ``config_file``, then ``overrides`` (None = unset)."""
        config = cls.preset(size)
        if config_file is not None:
            config = cls.load_json(config_file, base=config)
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        if given:
            config = cls.from_dict(given, base=config, source="flags")
        return config
