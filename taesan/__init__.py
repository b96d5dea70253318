"""taesan (태산): a compact transformer system — tokenizers, GPT, BERT, seq2seq Transformer, ViT, Word2Vec,
pretraining and transfer learning on PyTorch. The public API is re-exported here.

`taesan.pipeline` is the function (taesan.pipeline.tasks.pipeline), which shadows the package of the same name
as an attribute; import the package's modules by name: `from taesan.pipeline.bundle import Bundle`.
"""
from taesan import tokenizers
from taesan.decoding import generate
from taesan.errors import TaesanError
from taesan.models import create
from taesan.pipeline.tasks import pipeline
from taesan.tuning.load import load

__version__ = "0.1.0"
__all__ = ["TaesanError", "load", "pipeline", "generate", "create", "tokenizers", "__version__"]
