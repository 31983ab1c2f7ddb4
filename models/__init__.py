"""Backbone adapters, attention blocks and the builder that turns a spec into a re-ID network."""

from attnas.models.backbones import FAMILIES, backbone_family, backbone_names, layout
from attnas.models.blocks import BLOCKS, block_options, create_block
from attnas.models.builder import INPUT_SIZE, ReIDNet, attention_modules, build_model

__all__ = ["BLOCKS", "FAMILIES", "INPUT_SIZE", "ReIDNet", "attention_modules", "backbone_family", "backbone_names", "block_options",
           "build_model", "create_block", "layout"]
