"""Models: the shared training loop, self-describing checkpoints, CNNs and the torchvision zoo."""
