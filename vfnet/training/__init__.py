"""Training: network, losses, sampler, augmentation, checkpoints and the training loop."""
