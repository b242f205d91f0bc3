"""keras-tuner's chief / worker mode, made robust: a served oracle, worker heartbeats, reaping.

keras-tuner runs one oracle (the *chief*) and any number of *workers* that ask it for trials
over gRPC; the roles come from ``KERASTUNER_TUNER_ID`` (an id containing ``chief`` is the chief),
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``. ``python -m tuning ... --distributed
chief|worker`` sets them. On top of keras-tuner's protocol (workers run keras-tuner's own
``OracleClient``; the chief keras-tuner's own ``OracleServicer``) this module adds:

- **Several studies in a row** (a cell search runs its strategies one after the other): a
  worker's tuner id is ``<id>@<study>``; the chief answers a worker that is one study ahead with
  ``IDLE`` (ask again) and one that is behind with ``STOPPED`` (go to the next study).
- **Dead workers**: while a worker trains, a heartbeat thread calls ``GetTrial`` every few
  seconds. A tuner silent for ``worker_timeout`` seconds is dropped and its running trial goes
  back to the retry queue, where the next free worker picks it up. Workers that ask for a trial
  when none is left but others are still running get ``IDLE`` until those end (so a requeued
  trial always finds a worker).
- **Bounded waits**: a worker checks that the chief answers before it starts (a bounded number
  of attempts, then exit status 2), and every later call has a deadline (keras-tuner's own is
  an hour).
- **Atomic state files**: ``oracle.json`` and every ``trial.json`` are written to a temporary
  name and renamed, so a killed chief never leaves a half-written file.

The keras-tuner side of it (the oracle and tuner mixins, the server) is in
:mod:`tuning.cluster`; this module holds what the command line needs before TensorFlow loads.
Only keras-tuner's gRPC pieces (``keras_tuner.src.protos`` and its ``OracleServicer``) are
imported from private modules: keras-tuner has no public API for running the chief server.
The channel is gRPC's insecure one, as in keras-tuner: keep it on loopback or a trusted network.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from apps.common.errors import UsageError

ROLES = ("chief", "worker")
ENV_TUNER_ID = "KERASTUNER_TUNER_ID"
ENV_ORACLE_IP = "KERASTUNER_ORACLE_IP"
ENV_ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
STUDY_SEP = "@"


@dataclasses.dataclass(frozen=True)
class Distributed:
    """How this process takes part in a distributed search.

    Attributes:
        role: ``chief`` (serves the oracle) or ``worker`` (runs trials).
        host: the chief's address (``KERASTUNER_ORACLE_IP``).
        port: the chief's port (``KERASTUNER_ORACLE_PORT``).
        tuner_id: this process' id (``KERASTUNER_TUNER_ID``); the chief's contains ``chief``.
        worker_timeout: seconds without a word from a worker before its trial is requeued.
        connect_retries: attempts a worker makes to reach the chief before giving up.
        connect_timeout: seconds per attempt (also the deadline of later calls, times 10).
    """

    role: str
    host: str = "127.0.0.1"
    port: int = 8000
    tuner_id: str = "chief"
    worker_timeout: float = 120.0
    connect_retries: int = 20
    connect_timeout: float = 3.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def apply_env(self) -> None:
        """Set the ``KERASTUNER_*`` variables keras-tuner reads (and quiet its gRPC path)."""
        quiet_condition_protos()
        os.environ[ENV_TUNER_ID] = self.tuner_id
        os.environ[ENV_ORACLE_IP] = self.host
        os.environ[ENV_ORACLE_PORT] = str(self.port)

    def study_tuner_id(self, study: str) -> str:
        return f"{self.tuner_id}{STUDY_SEP}{study}"


def quiet_condition_protos() -> None:
    """Silence a stray debug ``print`` in keras-tuner 1.4.8's ``Parent.to_proto``.

    keras-tuner prints the first value of every conditional scope each time a search space
    goes over gRPC (every trial), flooding the chief's and the workers' output.
    """
    import contextlib
    import io

    from keras_tuner.src.engine import conditions

    original = conditions.Parent.to_proto
    if getattr(original, "_quiet", False):
        return

    def to_proto(self: Any) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return original(self)

    to_proto._quiet = True  # type: ignore[attr-defined]
    conditions.Parent.to_proto = to_proto


def clear_env() -> None:
    """Remove the ``KERASTUNER_*`` variables (a local search must not turn distributed)."""
    for key in (ENV_TUNER_ID, ENV_ORACLE_IP, ENV_ORACLE_PORT):
        os.environ.pop(key, None)


def env_defaults() -> dict[str, Any]:
    """Role, address and id from the ``KERASTUNER_*`` environment, where set."""
    out: dict[str, Any] = {}
    tuner_id = os.environ.get(ENV_TUNER_ID)
    if os.environ.get(ENV_ORACLE_IP):
        out["host"] = os.environ[ENV_ORACLE_IP]
        if tuner_id:
            out["role"] = "chief" if "chief" in tuner_id else "worker"
    if os.environ.get(ENV_ORACLE_PORT, "").isdigit():
        out["port"] = int(os.environ[ENV_ORACLE_PORT])
    if tuner_id:
        out["tuner_id"] = tuner_id
    return out


def check_settings(settings: Distributed) -> None:
    """Pure checks of the flags (``UsageError`` naming the flag)."""
    if settings.role not in ROLES:
        raise UsageError(f"--distributed: choose chief or worker, got {settings.role!r}")
    if not 1 <= settings.port <= 65535:
        raise UsageError(f"--oracle-port: must be in [1, 65535], got {settings.port}")
    if STUDY_SEP in settings.tuner_id or not settings.tuner_id.strip():
        raise UsageError(f"--tuner-id: must be non-empty without '{STUDY_SEP}'")
    is_chief = "chief" in settings.tuner_id
    if settings.role == "chief" and not is_chief:
        raise UsageError(
            f"--tuner-id: a chief's id must contain 'chief' (keras-tuner's rule), "
            f"got {settings.tuner_id!r}"
        )
    if settings.role == "worker" and is_chief:
        raise UsageError(
            f"--tuner-id: a worker's id must not contain 'chief', got {settings.tuner_id!r}"
        )


# ---------------------------------------------------------------------------- the worker side
def wait_for_chief(settings: Distributed, *, log: Callable[[str], None] | None = None) -> None:
    """Return once the chief answers; after ``connect_retries`` failed attempts, ``UsageError``."""
    import grpc

    for attempt in range(1, settings.connect_retries + 1):
        channel = grpc.insecure_channel(settings.address)
        try:
            grpc.channel_ready_future(channel).result(timeout=settings.connect_timeout)
            return
        except grpc.FutureTimeoutError:
            if log is not None:
                log(
                    f"worker: no chief answers at {settings.address} "
                    f"(attempt {attempt}/{settings.connect_retries}); retrying"
                )
        finally:
            channel.close()
    raise UsageError(
        f"--distributed worker: the chief at {settings.address} is not reachable after "
        f"{settings.connect_retries} attempts of {settings.connect_timeout:g}s; start it first "
        "(same command with --distributed chief)"
    )


def rpc_error_message(error: Exception, settings: Distributed) -> str:
    """One line for a gRPC failure talking to the chief."""
    code = getattr(error, "code", lambda: None)()
    name = getattr(code, "name", "UNKNOWN")
    return (
        f"--distributed worker: the chief at {settings.address} stopped answering ({name}); "
        "it may have finished or died"
    )
