"""The aggregate's and the report's budget results (freqbias.budget_results, freqbias.budget_report) on constructed
ladders whose answers are known: pooled intervals over seeds, X - N at equal budget on planted masks, the
equal-budget source of claims 2-4, n/a rows, the routes table and the two figures."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from freqbias import budget_report
from freqbias.budget_results import NO_LADDER, band_rows, curve_rows, equal_budget_source, ladder_frame, pooled_rows
from freqbias.frequency_orders import rfft_radius
from freqbias.parametrisation import Rfft

SIZE = 16
BUDGETS = [0.05, 0.2, 0.5]


def ladder(shape: str, ratios: list[float], seed: int, clean: float = 0.8) -> dict:
    """A ladder whose masks are low-pass discs (``shape`` "low") or a ring at radius 5-7 ("ring"), plus noise."""
    radius = rfft_radius(SIZE, SIZE).float()
    g = torch.Generator().manual_seed(seed)
    base = (radius <= 3).float() if shape == "low" else ((radius >= 5) & (radius <= 7)).float()
    masks = torch.stack([(base + 0.05 * torch.rand(base.shape, generator=g)).clamp(0, 1) for _ in BUDGETS])
    rows = [{"budget": b, "masked_ratio": r, "disc_ratio": r - 0.1 if clean else None, "converged": True}
            for b, r in zip(BUDGETS, ratios)]
    if not clean:
        rows = [{**row, "masked_ratio": None} for row in rows]
    return {"budgets": BUDGETS, "masks": masks, "rows": rows, "claims_budget": 0.05, "folds": masks[:2].clone()}


def fake_run(ladders: dict[tuple[str, int], dict | None]) -> SimpleNamespace:
    records = [SimpleNamespace(name=f"{v}-s{s}", variant=v, seed=s, budgets=lad, par=Rfft(SIZE, SIZE))
               for (v, s), lad in ladders.items()]
    variants = list(dict.fromkeys(v for v, _ in ladders))
    return SimpleNamespace(records=records, variants=variants, others=[v for v in variants if v != "N"],
                           seeds=sorted({s for _, s in ladders}), by={(r.variant, r.seed): r for r in records},
                           cfg=SimpleNamespace(alpha=0.05, radial_bands=6, angular_bands=4))


def test_pooled_rows_are_the_mean_over_seeds_with_a_t_interval() -> None:
    run = fake_run({("N", s): ladder("ring", [0.9 + 0.01 * s, 0.95, 1.0], s) for s in range(3)}
                   | {("A", s): ladder("low", [0.5, 0.8, 0.99], s) for s in range(3)})
    pooled = pooled_rows(ladder_frame(run), 0.05)
    n005 = next(r for r in pooled if r["variant"] == "N" and r["budget"] == 0.05)
    assert n005["masked_ratio"] == pytest.approx(0.91)
    assert n005["masked_ratio_lo"] < 0.91 < n005["masked_ratio_hi"]
    # t on 2 degrees of freedom: half-width 4.303 x sd / sqrt(3) with sd 0.01
    assert n005["masked_ratio_hi"] - 0.91 == pytest.approx(4.303 * 0.01 / np.sqrt(3), rel=1e-3)
    assert n005["mask_minus_disc"] == pytest.approx(0.1) and n005["seeds"] == 3 and n005["converged"] == 1
    curves = curve_rows(pooled)
    assert {c["series"] for c in curves} == {"N", "N disc", "A", "A disc"}


def test_a_model_without_a_ladder_or_with_clean_accuracy_zero_is_na_with_its_reason() -> None:
    run = fake_run({("N", 0): None, ("A", 0): ladder("low", [0.5, 0.8, 0.99], 0, clean=0.0)})
    frame = ladder_frame(run)
    assert frame.loc[frame.model == "N-s0", "reason"].item() == NO_LADDER
    assert frame.loc[frame.model == "A-s0", "reason"].str.contains("clean accuracy 0").all()
    pooled = pooled_rows(frame, 0.05)
    assert all(r["seeds"] == 0 and r["reason"] for r in pooled)
    assert equal_budget_source(run) is None
    assert "n/a" in budget_report.accuracy_table(pooled)


def test_band_rows_find_a_planted_low_pass_difference_at_equal_budget() -> None:
    """A's masks are low-pass discs and N's rings: A - N is positive over the low rings and negative over the mid,
    at every budget, with intervals clear of 0; a variant compared with itself is 0."""
    run = fake_run({("N", s): ladder("ring", [0.9] * 3, s) for s in range(3)}
                   | {("A", s): ladder("low", [0.9] * 3, 10 + s) for s in range(3)}
                   | {("S", s): ladder("ring", [0.9] * 3, s) for s in range(3)})
    rows = band_rows(run)
    assert len(rows) == 2 * len(BUDGETS) * 2
    for r in rows:
        if r["variant"] == "A":
            low = r["rings"].startswith("low")
            assert (r["lo"] > 0) if low else (r["hi"] < 0), r
        else:
            assert r["difference"] == pytest.approx(0.0, abs=1e-12)
    table = budget_report.bands_table(rows)
    assert "A - N" in table and "budget 0.2" in table
    assert all("[" in line for line in table.splitlines()[2:])   # every cell with its interval over seeds


def test_equal_budget_source_gives_fold_energies_per_seed_for_every_variant() -> None:
    run = fake_run({(v, s): ladder("low" if v == "A" else "ring", [0.9] * 3, s) for v in "NA" for s in range(2)})
    label, energies = equal_budget_source(run)
    assert label == "dataset masks, 2 folds, equal budget 0.05"
    assert set(energies) == {"radial", "angular"} and set(energies["radial"]) == {"N", "A"}
    assert [e.shape for e in energies["radial"]["A"]] == [(2, 6), (2, 6)]
    assert [e.shape for e in energies["angular"]["N"]] == [(2, 4), (2, 4)]


def test_routes_table_says_where_the_routes_agree() -> None:
    def p(statistic: str, verdict: str) -> dict:
        return {"statistic": statistic, "verdict": verdict}
    claims = [{"claim": 2, "parts": [p("A - N mean energy over low rings 0-3 (dataset masks, 4 folds, size-matched)",
                                        "inconclusive")],
               "secondary": [p("A - N mean energy over low rings 0-3 (dataset masks, 4 folds)", "holds"),
                             p("A - N mean energy over low rings 0-3 (dataset masks, 4 folds, equal budget 0.05)",
                               "inconclusive"),
                             p("A - N mean energy over mid rings 4-8 (dataset masks, 4 folds)", "holds"),
                             p("A - N mean energy over mid rings 4-8 (dataset masks, 4 folds, equal budget 0.05)",
                               "holds"),
                             p("A - N mean energy over low rings 0-3 (single-image masks)", "holds")]},
              {"claim": 5, "parts": [p("masked - complement agreement (N)", "holds")]}]
    lines = budget_report.routes_table(claims).splitlines()[2:]
    assert len(lines) == 2   # two fold statistics of claim 2; single-image parts and other claims left out
    assert lines[0].endswith("| holds | inconclusive | inconclusive | no |")
    assert lines[1].endswith("| holds | n/a | holds | yes |")


def aspect(path: Path) -> float:
    import matplotlib.image as mpimg
    h, w = mpimg.imread(path).shape[:2]
    return w / h


def test_figures_have_one_panel_per_variant_and_a_readable_aspect(tmp_path: Path) -> None:
    run = fake_run({(v, s): ladder("low" if v == "A" else "ring", [0.5, 0.9, 1.0], s) for v in "NASTRG"
                    for s in range(3)})
    pooled = pooled_rows(ladder_frame(run), 0.05)
    for path in (budget_report.draw_accuracy(pooled, tmp_path / "acc.png", dpi=40),
                 budget_report.draw_bands(band_rows(run), tmp_path / "bands.png", dpi=40)):
        assert path.exists() and 0.5 < aspect(path) <= 3


def test_the_figure_draws_claim_1_s_threshold_from_the_claims_rows() -> None:
    from freqbias.claims import claim_row, part
    from freqbias.verdicts import ABOVE

    rows = [claim_row("accuracy", [part("N: masked / clean", 0.95, 0.93, 0.97, 0.9, ABOVE)])]
    assert budget_report.rule_level(rows) == pytest.approx(0.9)   # the masks' rule, not a constant 0.99
    rows = [claim_row("accuracy", [part("N: masked / clean", 0.95, 0.93, 0.97, 0.8, ABOVE)])]
    assert budget_report.rule_level(rows) == pytest.approx(0.8)
    assert budget_report.rule_level([]) is None


def test_a_variant_with_every_ratio_na_still_draws(tmp_path: Path) -> None:
    run = fake_run({("N", 0): ladder("low", [0.5, 0.8, 0.99], 0, clean=0.0),
                    ("A", 0): ladder("low", [0.5, 0.8, 0.99], 0, clean=0.0)})
    pooled = pooled_rows(ladder_frame(run), 0.05)
    assert all(r["reason"] for r in pooled)
    assert budget_report.draw_accuracy(pooled, tmp_path / "acc.png", dpi=40).exists()


def test_a_variant_with_every_ratio_na_beside_one_measured_draws(tmp_path: Path) -> None:
    run = fake_run({("N", 0): ladder("low", [0.5, 0.8, 0.99], 0),
                    ("A", 0): ladder("low", [0.5, 0.8, 0.99], 0, clean=0.0)})
    pooled = pooled_rows(ladder_frame(run), 0.05)
    assert any(r["reason"] for r in pooled) and not all(r["reason"] for r in pooled)
    assert budget_report.draw_accuracy(pooled, tmp_path / "acc.png", dpi=40).exists()
