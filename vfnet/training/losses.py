"""The training loss: weighted CE + μ·cumulative ordinal term + ν·CE of the image-only head + λ·SupCon (Khosla et
al. 2020)."""
from typing import Any, Mapping, Sequence

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


def cumulative_ordinal_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample binary CE of the cumulative probabilities P(grade > k), k = 0 .. G-2, summed over k.

    P(grade > k) is read off the same softmax the grade comes from, so no extra head is needed. Unlike CE, which
    only sees the true grade's probability, the cost grows with the distance of the misplaced mass: mass on grade
    0 for a grade-3 vertebra violates all three thresholds, mass on grade 2 only one.
    """
    log_probabilities = F.log_softmax(logits, dim=1)
    grades = logits.shape[1]
    log_above = torch.stack([torch.logsumexp(log_probabilities[:, k + 1:], dim=1) for k in range(grades - 1)], 1)
    log_at_or_below = torch.stack([torch.logsumexp(log_probabilities[:, :k + 1], dim=1)
                                   for k in range(grades - 1)], 1)
    thresholds = torch.arange(grades - 1, device=logits.device)
    above = labels[:, None] > thresholds[None, :]
    return -torch.where(above, log_above, log_at_or_below).sum(dim=1)


class ContrastiveClassificationLoss(nn.Module):
    """Weighted CE on every view's logits + μ·ordinal term (same weights) + ν·weighted CE of the image-only head's
    logits (`image_logits`, when the network has that head) + λ·SupCon on all views' embeddings.

    `labels` are per sample; the model output holds `views` stacked copies (view 1 of all samples, then view 2).
    Class weight 0 is allowed (a grade absent from the dataset); λ = μ = 0 gives plain CE.
    """

    def __init__(self, class_weights: Sequence[float], supcon_weight: float, temperature: float,
                 ordinal_weight: float = 0.0, image_ce_weight: float = 0.0):
        super().__init__()
        self.register_buffer("class_weights", torch.as_tensor(list(class_weights), dtype=torch.float32))
        self.supcon_weight = float(supcon_weight)
        self.temperature = float(temperature)
        self.ordinal_weight = float(ordinal_weight)
        self.image_ce_weight = float(image_ce_weight)

    @classmethod
    def from_plan(cls, training: Mapping[str, Any]) -> "ContrastiveClassificationLoss":
        return cls(training["ce_class_weights"], training.get("supcon_weight", 0.0),
                   training.get("supcon_temperature", 0.1), training.get("ordinal_weight", 0.0),
                   training.get("image_ce_weight", 0.0))

    def forward(self, output: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        views = output["logits"].shape[0] // labels.shape[0]
        all_labels = labels.repeat(views)
        weights = self.class_weights.to(output["logits"].dtype)
        # Weighted mean as in F.cross_entropy, but a batch of only zero-weight grades gives 0 instead of NaN.
        denominator = weights[all_labels].sum().clamp_min(torch.finfo(weights.dtype).tiny)

        def weighted_ce(logits: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, all_labels, weight=weights, reduction="sum") / denominator

        ce = weighted_ce(output["logits"])
        loss = ce
        if self.ordinal_weight > 0:
            ordinal = (cumulative_ordinal_loss(output["logits"], all_labels) * weights[all_labels]).sum() / denominator
            loss = loss + self.ordinal_weight * ordinal
        if self.image_ce_weight > 0:
            loss = loss + self.image_ce_weight * weighted_ce(output["image_logits"])
        if self.supcon_weight == 0:
            return {"loss": loss, "ce": ce.detach(), "supcon": torch.zeros((), device=ce.device)}
        contrastive = supcon_loss(output["embedding"].float(), all_labels, self.temperature)
        return {"loss": loss + self.supcon_weight * contrastive, "ce": ce.detach(), "supcon": contrastive.detach()}
