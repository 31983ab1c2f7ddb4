"""Re-ID head of the "bag of tricks" baseline (Luo et al., 2019): GAP -> BNNeck -> classifier.

Training returns the logits (ID loss) and the feature before the BNNeck (triplet loss); eval
returns the BN-normalised embedding, the one retrieval is scored on.
"""

from __future__ import annotations

import torch
from torch import nn


class ReIDHead(nn.Module):
    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.bnneck = nn.BatchNorm1d(in_features)
        self.bnneck.bias.requires_grad_(False)  # BNNeck: no shift, as in the baseline
        self.classifier = nn.Linear(in_features, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        feature = feature_map.mean(dim=(2, 3))
        embedding = self.bnneck(feature)
        if not self.training:
            return embedding
        return self.classifier(embedding), feature
