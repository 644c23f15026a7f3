"""odqa: open-domain question answering — retrieval, reading, evaluation and serving.

Importing this package is instant: heavy dependencies (morphological analyzers, numba,
torch) load only inside the functions that need them.
"""

__version__ = "0.1.0"

from odqa.errors import OdqaError
from odqa.types import Document, Hit, Passage

__all__ = ["Document", "Hit", "OdqaError", "Passage", "__version__"]
