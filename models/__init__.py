"""Attention blocks and the builder that turns a spec into a re-ID ResNet."""

from attnas.models.blocks import BLOCKS, create_block
from attnas.models.builder import BACKBONES, ReIDNet, attention_modules, build_model

__all__ = ["BLOCKS", "BACKBONES", "ReIDNet", "attention_modules", "build_model", "create_block"]
