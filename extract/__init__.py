"""skdice.extract: the PyTorch stage that writes penultimate features to a feature store.

Needs the ``extract`` extra: ``pip install "skdice[extract]"``.
"""
