"""``gluon.block``: Block, HybridBlock and SymbolBlock (:mod:`dlrun.nn`)."""
from ..nn import Block, HybridBlock, SymbolBlock

__all__ = ["Block", "HybridBlock", "SymbolBlock"]
