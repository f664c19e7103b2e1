"""dlrun: a deep-learning experiment runner on its own Gluon-style engine."""
__version__ = "0.1.0"
