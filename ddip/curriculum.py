"""Target scheduling: what the generators must reconstruct at each step.

``scheduler=none`` fits the image itself (:class:`NoCurriculum`). The DDPM-guided curricula (most-noised
copies of the image first, ``linear``/``cosine`` β schedules) implement the same interface.
"""

from __future__ import annotations

import torch


class NoCurriculum:
    """The target is the image itself at every step (plain DIP / Double-DIP)."""

    def target(self, image: torch.Tensor, step: int) -> torch.Tensor:
        """The target of optimisation step ``step`` for a (possibly augmented) image."""
        return image
