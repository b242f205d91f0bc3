"""The one place that maps ``--cell`` / ``--model`` names to recurrent layers and cells.

Names: ``vanilla``, ``lstm``, ``gru``, ``mut1``, ``mut2``, ``mut3``, ``genotype:PATH.json``,
and each with a ``bi`` prefix for a bidirectional layer (``bilstm``, ``bigru``, ``bivanilla``,
``bimut1``, ``bigenotype:PATH.json``). ``lstm``/``gru`` are keras' own layers; the rest come
from :mod:`seqlayers` (imported lazily, when a layer is made).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from apps.common.errors import UsageError

KINDS = ("vanilla", "lstm", "gru", "mut1", "mut2", "mut3", "genotype")
CELL_CHOICES = (
    "vanilla",
    "lstm",
    "gru",
    "mut1",
    "mut2",
    "mut3",
    "genotype:PATH.json",
    "bivanilla",
    "bilstm",
    "bigru",
    "bimut1",
    "bimut2",
    "bimut3",
    "bigenotype:PATH.json",
)


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """A parsed cell name.

    Attributes:
        kind: one of ``KINDS``.
        bidirectional: whether the name had the ``bi`` prefix.
        genotype_path: the genotype JSON for ``kind == "genotype"``, else ``None``.
    """

    kind: str
    bidirectional: bool = False
    genotype_path: Path | None = None

    @property
    def name(self) -> str:
        """The canonical name (``bilstm``, ``genotype:cell.json``)."""
        base = f"genotype:{self.genotype_path}" if self.kind == "genotype" else self.kind
        return ("bi" if self.bidirectional else "") + base


def parse_cell_name(
    name: str, *, flag: str = "--cell", allow_bidirectional: bool = True
) -> CellSpec:
    """Parse a cell / recurrent model name.

    Args:
        name: e.g. ``"lstm"``, ``"bigru"``, ``"genotype:runs/search/best.json"``.
        flag: the flag named in errors (``--cell`` or ``--model``).
        allow_bidirectional: whether ``bi`` variants are accepted.

    Returns:
        The :class:`CellSpec`.

    Raises:
        UsageError: unknown name (the message lists the choices), a genotype file that does not
            exist, or a ``bi`` variant where it is not allowed.

    Example:
        >>> parse_cell_name("bimut2")
        CellSpec(kind='mut2', bidirectional=True, genotype_path=None)
    """
    raw = name.strip() if isinstance(name, str) else ""
    lowered = raw.lower()
    bidirectional = False
    rest, rest_raw = lowered, raw
    if lowered.startswith("bi") and (lowered[2:] in KINDS or lowered[2:].startswith("genotype:")):
        bidirectional, rest, rest_raw = True, lowered[2:], raw[2:]
    if rest.startswith("genotype:"):
        path = Path(rest_raw[len("genotype:") :])
        if not str(path) or str(path) == ".":
            raise UsageError(f"{flag}: genotype needs a file: genotype:PATH.json")
        if not path.is_file():
            raise UsageError(f"{flag}: no such genotype file: {path}")
        spec = CellSpec("genotype", bidirectional, path)
    elif rest in KINDS and rest != "genotype":
        spec = CellSpec(rest, bidirectional)
    else:
        choices = CELL_CHOICES if allow_bidirectional else CELL_CHOICES[:7]
        raise UsageError(f"{flag}: unknown cell {raw!r} (choose from {', '.join(choices)})")
    if bidirectional and not allow_bidirectional:
        raise UsageError(f"{flag}: {raw!r} is bidirectional; this command needs a one-way cell")
    return spec


def _seqlayers():
    try:
        import seqlayers
    except ImportError as e:  # pragma: no cover - part of this repository
        raise RuntimeError(f"seqlayers cannot be imported: {e}") from e
    return seqlayers


def _load_genotype(spec: CellSpec) -> Any:
    sl = _seqlayers()
    try:
        return sl.CellGenotype.load(spec.genotype_path)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        first = " ".join(str(e).split())[:200]
        raise UsageError(f"{spec.genotype_path} is not a valid cell genotype: {first}") from None


def make_cell(name: str, units: int, *, seed: int | None = None, **kwargs: Any) -> Any:
    """A bare recurrent cell (for decoders and ``keras.layers.RNN``).

    Args:
        name: a one-way cell name (``lstm``, ``gru``, ``vanilla``, ``mut1``…, ``genotype:P``).
        units: hidden size.
        seed: seed for the cell's dropout randomness, where the cell takes one.
        **kwargs: passed to the cell constructor.

    Returns:
        A keras cell (``keras.layers.LSTMCell``, ``GRUCell`` or a ``seqlayers`` cell).
    """
    import keras

    spec = parse_cell_name(name, allow_bidirectional=False)
    if units < 1:
        raise ValueError(f"units must be >= 1. Received: units={units}")
    if spec.kind == "lstm":
        return keras.layers.LSTMCell(units, seed=seed, **kwargs)
    if spec.kind == "gru":
        return keras.layers.GRUCell(units, seed=seed, **kwargs)
    sl = _seqlayers()
    if spec.kind == "vanilla":
        return sl.VanillaRNNCell(units, seed=seed, **kwargs)
    if spec.kind in ("mut1", "mut2", "mut3"):
        return getattr(sl, spec.kind.upper() + "Cell")(units, seed=seed, **kwargs)
    return sl.GenotypeCell(units, _load_genotype(spec), **kwargs)


def recurrent_layer(
    cell_name: str,
    units: int,
    *,
    return_sequences: bool = False,
    return_state: bool = False,
    seed: int | None = None,
    name: str | None = None,
) -> Any:
    """A recurrent layer for a cell name, bidirectional for ``bi`` variants.

    Args:
        cell_name: see :func:`parse_cell_name`.
        units: hidden size (per direction).
        return_sequences: return the whole output sequence.
        return_state: also return the final state(s).
        seed: seed for the layer's randomness (keras ``LSTM``/``GRU``).
        name: layer name.

    Returns:
        ``keras.layers.LSTM`` / ``GRU`` for ``lstm``/``gru``; ``seqlayers.VanillaRNN`` /
        ``MUT1..3`` for those; ``seqlayers.GenotypeRNN`` for genotypes (equal to
        ``keras.layers.RNN(GenotypeCell(units, genotype))``, with the input terms fused); wrapped in
        ``keras.layers.Bidirectional`` (concatenated outputs) for ``bi`` variants.

    Example:
        >>> layer = recurrent_layer("bilstm", 32)
        >>> layer(np.zeros((2, 5, 8))).shape
        (2, 64)
    """
    import keras

    if units < 1:
        raise ValueError(f"units must be >= 1. Received: units={units}")
    spec = parse_cell_name(cell_name)
    common = {"return_sequences": return_sequences, "return_state": return_state}
    inner_name = None if spec.bidirectional else name
    if spec.kind == "lstm":
        layer = keras.layers.LSTM(units, seed=seed, name=inner_name, **common)
    elif spec.kind == "gru":
        layer = keras.layers.GRU(units, seed=seed, name=inner_name, **common)
    elif spec.kind == "genotype":
        sl = _seqlayers()
        genotype = _load_genotype(spec)
        layer = sl.GenotypeRNN(units, genotype, name=inner_name, **common)
    else:
        sl = _seqlayers()
        cls = sl.VanillaRNN if spec.kind == "vanilla" else getattr(sl, spec.kind.upper())
        layer = cls(units, seed=seed, name=inner_name, **common)
    if spec.bidirectional:
        layer = keras.layers.Bidirectional(layer, name=name)
    return layer
