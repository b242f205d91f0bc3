"""Where each task's data comes from (pure Python: checked before TensorFlow loads)."""

from __future__ import annotations

import os
from pathlib import Path

from apps.common.errors import DataError

DEFAULT_DATA = {"charlm": "builtin:pysource", "jsb": None, "sentiment": "builtin:tweets"}
JSB_FILE = Path("music") / "jsb_chorales" / "jsb-chorales-quarter.json"


def shared_data_dir() -> Path:
    """``$RNNSUITE_SHARED_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("RNNSUITE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def resolve_data(task: str, data: str | None) -> str:
    """The ``--data`` value to use for ``task`` (its default when ``None``).

    Defaults: ``builtin:pysource`` (charlm), ``builtin:tweets`` (sentiment), and for jsb the
    JSB Chorales JSON of the shared data folder (``$RNNSUITE_SHARED_DATA``).

    Raises:
        DataError: a file that does not exist, a source the task cannot read, or no JSB file.
    """
    if data is None:
        data = DEFAULT_DATA[task]
        if data is None:
            path = shared_data_dir() / JSB_FILE
            if not path.is_file():
                raise DataError(
                    f"--data: the jsb task needs a piano-roll JSON such as {JSB_FILE.name} "
                    f"(not found at {path}); give --data PATH"
                )
            return str(path)
    if task == "jsb" and data.startswith(("builtin:", "tfds:")):
        raise DataError(f"--data: the jsb task reads a piano-roll JSON file, got {data!r}")
    if task == "charlm" and data.startswith(("builtin:", "tfds:")) and data != "builtin:pysource":
        raise DataError(f"--data: charlm reads builtin:pysource or a text file, got {data!r}")
    if task in ("charlm", "jsb") and not data.startswith("builtin:") and not Path(data).is_file():
        raise DataError(f"--data: no such file: {data}")
    if task == "sentiment":
        from apps.common.sources import parse_source

        parse_source(data, ("tweets",))
    return data
