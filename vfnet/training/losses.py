"""Supervised contrastive loss (Khosla et al. 2020) and the combined CE + λ·SupCon training loss."""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def supcon_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """SupCon "L_out" over L2-normalised embeddings (N, D) with integer labels (N,).

    For every anchor i with at least one positive (same label, other sample):
        -1/|P(i)| * sum_{p in P(i)} log( exp(z_i·z_p/τ) / sum_{a != i} exp(z_i·z_a/τ) ),
    averaged over those anchors. Anchors without positives contribute nothing; a batch without any positive
    pair gives 0 (connected to the graph, so backward still works).
    """
    count = embeddings.shape[0]
    similarity = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(count, dtype=torch.bool, device=embeddings.device)
    # Subtracting the row maximum leaves the softmax unchanged and avoids overflow at small τ.
    similarity = similarity - similarity.detach().masked_fill(self_mask, float("-inf")).amax(dim=1, keepdim=True)
    log_denominator = torch.logsumexp(similarity.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    log_probability = similarity - log_denominator
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    positive_counts = positives.sum(dim=1)
    has_positive = positive_counts > 0
    if not bool(has_positive.any()):
        return embeddings.sum() * 0.0
    mean_log_probability = (log_probability * positives).sum(dim=1)[has_positive] / positive_counts[has_positive]
    return -mean_log_probability.mean()


class ContrastiveClassificationLoss(nn.Module):
    """Weighted cross-entropy on every view's logits + λ·SupCon on the embeddings of all views together.

    `labels` are per sample; the model output holds `views` stacked copies (view 1 of all samples, then view 2).
    Class weight 0 is allowed (a grade absent from the dataset); λ = 0 gives plain CE.
    """

    def __init__(self, class_weights: Sequence[float], supcon_weight: float, temperature: float):
        super().__init__()
        self.register_buffer("class_weights", torch.as_tensor(list(class_weights), dtype=torch.float32))
        self.supcon_weight = float(supcon_weight)
        self.temperature = float(temperature)

    def forward(self, output: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        views = output["logits"].shape[0] // labels.shape[0]
        all_labels = labels.repeat(views)
        weights = self.class_weights.to(output["logits"].dtype)
        total_weight = weights[all_labels].sum()
        ce_sum = F.cross_entropy(output["logits"], all_labels, weight=weights, reduction="sum")
        # Weighted mean as in F.cross_entropy, but a batch of only zero-weight grades gives 0 instead of NaN.
        ce = ce_sum / total_weight.clamp_min(torch.finfo(weights.dtype).tiny)
        if self.supcon_weight == 0:
            return {"loss": ce, "ce": ce.detach(), "supcon": torch.zeros((), device=ce.device)}
        contrastive = supcon_loss(output["embedding"].float(), all_labels, self.temperature)
        return {"loss": ce + self.supcon_weight * contrastive, "ce": ce.detach(), "supcon": contrastive.detach()}
