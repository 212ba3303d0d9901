"""The aggregate stage's shared types: its params (:class:`AggregateConfig`) and the models of one
aggregation with their context (:class:`Run`).

Their own module so that imports run one way: :mod:`freqbias.bands`, :mod:`freqbias.baselines`,
:mod:`freqbias.claims`, :mod:`freqbias.figdata`, :mod:`freqbias.probe` and :mod:`freqbias.tables` take
these types, and :mod:`freqbias.stage_aggregate` imports them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from .band_geometry import band_centres, empty_bands
from .baselines import HeatmapConfig
from .config import ParamError, Section

if TYPE_CHECKING:
    from .measures import ModelRecord

# ----------------------------------------------------------------------------- params


@dataclass(frozen=True)
class AggregateConfig:
    """The ``aggregate`` section of params.yaml (see the comments there)."""

    radial_bands: int = 14
    angular_bands: int = 16
    n_boot: int = 2000
    alpha: float = 0.05
    seed: int = 0
    accuracy_n: int | None = 1000
    probe_folds: int = 5
    probe_permutations: int = 5
    probe_weight_decay: float = 1e-3
    probe_max_iter: int = 200
    filter_n: int = 300
    filter_radii: tuple[float, ...] = (1, 2, 4, 6, 9, 14)
    heatmap: HeatmapConfig = HeatmapConfig(n=100, grid=7, norm=3.0)
    figure_images: int = 8
    ratio_min: float = 0.99
    small_ratio: float = 0.5
    agreement_min: float = 0.9
    ssim_max: float = 0.5
    budget_needed: float = 0.9

    @classmethod
    def from_params(cls, params: Mapping[str, Any], image_size: tuple[int, int]) -> "AggregateConfig":
        """Read and validate ``aggregate``; band counts must leave no band empty on an ``image_size`` plane."""
        sec = Section(params, "aggregate")
        probe, filt, heat, claims = sec.sub("probe"), sec.sub("filtered"), sec.sub("heatmap"), sec.sub("claims")
        cfg = cls(
            radial_bands=sec.integer("radial_bands", min=3), angular_bands=sec.integer("angular_bands", min=2),
            n_boot=sec.integer("n_boot", min=10), alpha=sec.number("alpha", min=0, max=0.5, strict_min=True),
            seed=sec.integer("seed", min=0), accuracy_n=sec.integer("accuracy_n", None, min=1, optional=True),
            probe_folds=probe.integer("folds", min=2), probe_permutations=probe.integer("permutations", min=1),
            probe_weight_decay=probe.number("weight_decay", min=0), probe_max_iter=probe.integer("max_iter", min=1),
            filter_n=filt.integer("n", min=1), filter_radii=tuple(filt.numbers("radii", min=0)),
            heatmap=HeatmapConfig.from_section(heat),
            figure_images=sec.integer("figure_images", min=1),
            budget_needed=sec.number("budget_needed", min=0, max=1, strict_min=True),
            ratio_min=claims.number("ratio_min", min=0), small_ratio=claims.number("small_ratio", min=0),
            agreement_min=claims.number("agreement_min", min=0, max=1), ssim_max=claims.number("ssim_max", max=1),
        )
        if not cfg.filter_radii:
            raise ParamError("aggregate.filtered.radii: must list at least one radius")
        h, w = image_size
        empty = empty_bands(h, w, cfg.radial_bands, cfg.angular_bands)
        for key, n in (("radial", cfg.radial_bands), ("angular", cfg.angular_bands)):
            if empty[key]:
                raise ParamError(f"aggregate.{key}_bands: {n} bands leave band(s) {empty[key]} empty on a "
                                 f"{h}x{w} spectrum; use fewer")
        return cfg


@dataclass
class Run:
    """The models of one aggregation with their context: ``by[(variant, seed)]`` -> record, the seeds
    and variants in order (N included), the class names and the image size (H, W)."""

    records: list[ModelRecord]
    cfg: AggregateConfig
    class_names: list[str]
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        self.seeds = sorted({r.seed for r in self.records})
        self.variants = list(dict.fromkeys(r.variant for r in self.records))
        self.others = [v for v in self.variants if v != "N"]
        self.by = {(r.variant, r.seed): r for r in self.records}
        self.centres = band_centres(*self.image_size, self.cfg.radial_bands, self.cfg.angular_bands)
        self.boot = dict(n_boot=self.cfg.n_boot, alpha=self.cfg.alpha, seed=self.cfg.seed)
