"""A new mask parametrisation is one registered class: the masks stage fits it from ``masks.kind``, the
artifacts store its kind, the aggregate stage reads it back and measures its band energies, with no other change."""

from __future__ import annotations

import math

import pytest
import torch

from freqbias import paths
from freqbias import stage_aggregate as ag
from freqbias.artifacts import LoadedModel, save_checkpoint
from freqbias.attacks import PGD
from freqbias.config import ParamError, load_params
from freqbias.io import save_json
from freqbias.measures import load_records
from freqbias.models import build_model
from freqbias.parametrisation import PARAMETRISATIONS, Parametrisation, Rfft, register_parametrisation
from freqbias.stage_masks import MasksConfig, fit_model_masks
from freqbias.stage_selection import load_selection, save_selection, select_images
from test_aggregate import SMALL
from test_artifacts import META, TINY_BUDGET, H, W

pytestmark = pytest.mark.usefixtures("one_thread")


class Blocks(Parametrisation):
    """One value per 2 x 2 block of rfft entries: ((H + 1) // 2, (W//2 + 2) // 2)."""

    kind = "blocks"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.h + 1) // 2, (self.w // 2 + 2) // 2

    def expand(self, m: torch.Tensor) -> torch.Tensor:
        """(..., *shape) -> rfft masks (..., H, W//2+1)."""
        return m.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., :self.h, :self.w // 2 + 1]

    def apply(self, z: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        self.check(m, batch=z.shape[0])
        return Rfft(self.h, self.w).apply(z, self.expand(m))

    def to_full(self, m: torch.Tensor) -> torch.Tensor:
        return Rfft(self.h, self.w).to_full(self.expand(m))

    def weights(self, device=None, dtype=None) -> torch.Tensor:
        rfft = Rfft(self.h, self.w).weights(device=device, dtype=dtype)
        pad = (0, 2 * self.shape[1] - rfft.shape[1], 0, 2 * self.shape[0] - rfft.shape[0])
        blocks = torch.nn.functional.pad(rfft, pad).unflatten(0, (-1, 2)).unflatten(-1, (-1, 2))
        return blocks.sum(dim=(1, 3))


@pytest.fixture
def blocks():
    register_parametrisation(Blocks)
    yield Blocks
    del PARAMETRISATIONS["blocks"]


def test_registering_checks_the_class(blocks):
    with pytest.raises(ValueError, match="already registered"):
        register_parametrisation(Blocks)
    with pytest.raises(ValueError, match="subclass with a kind"):
        register_parametrisation(type("NoKind", (Parametrisation,), {}))
    par = Blocks(H, W)
    assert float(par.weights().sum()) == pytest.approx(1.0)
    ones = par.init(1)[0]
    torch.testing.assert_close(par.to_full(ones), torch.ones(H, W))          # the identity filter


def test_masks_kind_accepts_it_only_once_registered(blocks):
    params = load_params(paths.ROOT / "params.yaml")
    params["masks"]["kind"] = "blocks"
    assert MasksConfig.from_params(params).parametrisation is Blocks
    del PARAMETRISATIONS["blocks"]
    try:
        with pytest.raises(ParamError, match="masks.kind"):
            MasksConfig.from_params(params)
    finally:
        register_parametrisation(Blocks)


def test_a_new_parametrisation_runs_through_masks_and_aggregate(blocks, tmp_path):
    """The masks stage's call with ``masks.kind: blocks`` on random models, saved where the stage saves, read back
    by the aggregate's loader and aggregated: every mask is in the new layout and its band energies are finite."""
    torch.manual_seed(0)
    x = torch.randint(0, 256, (60, 1, H, W), dtype=torch.uint8)
    y = torch.arange(60) % 4
    splits = {"val": (x[:40], y[:40]), "test": (x[20:], y[20:])}
    models = {v: build_model(**META).eval() for v in ("N", "A")}
    cfg = MasksConfig.from_params({"masks": {**_masks_params(), "kind": "blocks"}})
    save_selection(select_images(models["N"], models["A"], *splits["test"], PGD(0.3, 0.1, 3), 4, seed=0),
                   paths.selection_file(0, tmp_path))
    sel = load_selection(paths.selection_file(0, tmp_path), splits["test"][0])
    for v, model in models.items():
        name = paths.model_name(v, 0)
        meta = {**META, "variant": v, "seed": 0}
        out = fit_model_masks(LoadedModel(name, model, meta), 0, sel, splits, cfg, adv_masks=v == "N")
        assert out.masks.dataset.kind == "blocks" and out.masks.dataset.mask.shape == Blocks(H, W).shape
        assert out.masks.single.masks.shape[1:] == Blocks(H, W).shape
        save_checkpoint(model, meta, paths.checkpoint(name, tmp_path))
        out.masks.save(name, tmp_path)
        save_json(out.metrics, paths.mask_metrics(name, tmp_path))
        save_json({"train_seconds": 1.0}, paths.train_metrics(name, tmp_path))
        save_json({"test_acc": 0.5}, paths.eval_metrics(name, tmp_path))
    records = load_records(["N", "A"], [0], torch.device("cpu"), tmp_path)
    assert all(isinstance(r.par, Blocks) for r in records)
    res = ag.run_aggregate(records, SMALL, {"val": splits["val"], "test": splits["test"]}, attack=None,
                           class_names=["a", "b", "c", "d"])
    rows = [r for r in res.tables["band_energies"] if r["mask"] == "dataset"]
    assert rows and all(isinstance(r["energy"], float) and math.isfinite(r["energy"]) for r in rows)


def _masks_params() -> dict:
    params = load_params(paths.ROOT / "params.yaml")["masks"]
    params["dataset"].update(fit_n=30, folds=2, class_fit_n=4, batch_size=8, max_steps=10, check_every=5, patience=1)
    params["single"].update(max_steps=3)
    params["budget"].update(TINY_BUDGET)
    return params
