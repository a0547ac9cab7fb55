"""Helpers shared by the model-layer tests."""

from __future__ import annotations


def same_weights(a, b) -> list[str]:
    """Keys whose tensors differ between two modules (position_ids buffers ignored)."""
    import torch

    sa = {k: v for k, v in a.state_dict().items() if "position_ids" not in k}
    sb = {k: v for k, v in b.state_dict().items() if "position_ids" not in k}
    if set(sa) != set(sb):
        return sorted(set(sa) ^ set(sb))
    return [k for k in sa if not torch.equal(sa[k], sb[k])]
