"""The yardstick stage's work (docs/study.md, "Controls", claim 11): the trained standard model's single-image
masks on another seed's selected images, fitted as the masks stage fits them, so that the aggregate stage can set
the randomised model's distance from the trained masks beside the distance between two trained seeds.
"""

from __future__ import annotations

from .artifacts import YardstickData
from .fitting import SingleMaskConfig
from .models import Classifier
from .stage_controls import fit_own_masks
from .stage_selection import Selection


def yardstick(model: Classifier, seed: int, selection: Selection | None, single_cfg: SingleMaskConfig,
              reason: str = "") -> YardstickData:
    """Claim 11's yardstick (the yardstick stage): the trained standard ``model``'s single-image masks on the
    images another seed's models were selected on (``selection`` of seed ``seed``), fitted as the masks stage
    fits them; the aggregate stage compares them with that seed's own masks: two trained networks of one recipe
    on the same images. ``selection`` None (one seed): none, ``na`` = ``reason``."""
    if selection is None:
        return YardstickData(na=reason)
    return YardstickData(**fit_own_masks(model, selection.x, single_cfg), seed=seed, index=selection.index)
