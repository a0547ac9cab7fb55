"""Loom's built-in nodes that need no model weights (image, mask, latent, primitives, utilities)."""
