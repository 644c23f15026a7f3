"""Training on transformers + accelerate: the reader (`reader.py`), masked-LM pretraining
(`mlm.py`), and the loop they share (`loop.py`). Importing this package does not import torch."""
