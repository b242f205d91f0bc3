"""seqlayers: recurrent cells and attention written in pure ``keras.ops``.

Importing this package registers every layer with Keras' serialization registry
(package ``"seqlayers"``), so ``keras.saving.load_model(path, safe_mode=True)`` works
after a plain ``import seqlayers``.
"""

# ruff: noqa: I001  (imports are grouped by concept, one section per module family)

# --- vanilla RNN and MUT cells (owner: cells helper) ---
from seqlayers.mut import MUT1, MUT2, MUT3, MUT1Cell, MUT2Cell, MUT3Cell
from seqlayers.projected import ProjectedRNN, ProjectedRNNCell
from seqlayers.vanilla import VanillaRNN, VanillaRNNCell

# --- attention (owner: attention helper) ---
from seqlayers.attention import BahdanauAttention
from seqlayers.attention_decoder import AttentionDecoder, AttentionDecoderCell
from seqlayers.position import PositionEmbedding

# --- genotype cells (owner: genotype helper) ---
from seqlayers.genotype import (
    CellGenotype,
    GenotypeNode,
    NodeInput,
    param_count,
    random_genotype,
    units_for_budget,
)
from seqlayers.genotype_cell import GenotypeCell, GenotypeRNN, set_weights_from_keras
from seqlayers.genotype_presets import PRESETS as GENOTYPE_PRESETS

__all__ = [  # noqa: RUF022 - grouped by concept (cells, attention, genotypes, helpers)
    "VanillaRNNCell", "VanillaRNN", "MUT1Cell", "MUT2Cell", "MUT3Cell", "MUT1", "MUT2", "MUT3",
    "ProjectedRNN", "ProjectedRNNCell",
    "BahdanauAttention", "AttentionDecoderCell", "AttentionDecoder", "PositionEmbedding",
    "CellGenotype", "GenotypeNode", "NodeInput", "GenotypeCell", "GenotypeRNN", "GENOTYPE_PRESETS",
    "param_count", "random_genotype", "units_for_budget", "set_weights_from_keras",
]
