"""The model families (gpt, bert, vit, transformer, word2vec), each beside its HuggingFace conversion
(<family>_hf.py), and the registry that names them (registry.py)."""
from taesan.models.registry import (
    HF_EXPORTERS,
    HF_IMPORTERS,
    MODEL_TYPES,
    PRESETS,
    create,
    from_hf,
    load_model,
    model_class,
    presets,
    to_hf,
)

__all__ = ["HF_EXPORTERS", "HF_IMPORTERS", "MODEL_TYPES", "PRESETS", "create", "from_hf", "load_model",
           "model_class", "presets", "to_hf"]
