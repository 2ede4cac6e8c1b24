"""Model files: every compressed state saved as data (architecture name, structure edits, tensors) and rebuilt
without importing or unpickling anything a file names."""

from slimkit.state.compressed import load_compressed, save_compressed
from slimkit.state.file import load_model, read_model_file, rebuild, save_model
from slimkit.state.quant_kinds import register_quantizer
from slimkit.state.structure import StructureKind, describe_structure, register_structure_kind

__all__ = [
    "StructureKind", "describe_structure", "load_compressed", "load_model", "read_model_file", "rebuild",
    "register_quantizer", "register_structure_kind", "save_compressed", "save_model",
]
