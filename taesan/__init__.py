"""taesan (태산): a compact transformer system — tokenizers, GPT, BERT, seq2seq Transformer, ViT, Word2Vec,
pretraining and transfer learning on PyTorch. The public API is re-exported here."""
from taesan import tokenizers
from taesan.errors import TaesanError
from taesan.generate import generate
from taesan.load import load
from taesan.models import create

__version__ = "0.1.0"
__all__ = ["TaesanError", "load", "generate", "create", "tokenizers", "__version__"]
