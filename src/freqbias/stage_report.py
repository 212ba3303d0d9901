"""The report stage: figures and ``reports/report.md``, from the aggregate stage's outputs only.

Reads ``results/figdata.pt``, ``results/claims.json``, ``results/summary.json`` and the result tables
(``results/*.csv``); writes ``reports/figures/*.png`` (:mod:`freqbias.report_figures`) and the markdown report:
what this run found (sentences generated from the claims, :mod:`freqbias.headline`) and a glossary, the set-up
(data, architecture, variants, seeds, key params, commit, run time), the study's reference
numbers next to this run's, the claims with their verdicts, every figure with a caption, and the
main tables. A value the run could not measure is shown as ``n/a (<reason>)`` (:mod:`freqbias.na`; an
empty table cell reads the same, with the row's reason), a figure without data as a note saying why.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import budget_report, headline, paths
from .config import DataError
from .findings import controls_section, controls_tables
from .io import load_csv, load_json, load_torch
from .na import NA, cell, parse_reasons
from .report_figures import Figure, ReportConfig
from .report_figures import make_figures as make_figures  # re-exported
from .study import REFERENCE
from .textfmt import PLAIN, ci, fmt
from .textfmt import markdown_table as _table
from .variants import label as variant_label

TABLES = ("accuracy", "mask_fits", "single_image", "probe", "heatmaps", "equal_budget", "isotropic", "faithfulness",
          "budget_accuracy_pooled", "budget_bands", "budget_needed",
          "class_specificity", "size_matched")

def load_results(folder: Path = paths.RESULTS) -> tuple[dict, list[dict], dict, dict[str, list[dict]]]:
    """``(figdata, claims, summary, tables)`` from the aggregate stage's outputs (read with :mod:`freqbias.io`);
    DataError (one line) when one is missing, truncated or malformed."""
    names = ["figdata.pt", "claims.json", "summary.json"] + [f"{t}.csv" for t in TABLES]
    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        raise DataError(f"{folder / missing[0]}: not found (run the aggregate stage first: `dvc repro aggregate`)")
    tables = {t: load_csv(folder / f"{t}.csv", "result table") for t in TABLES}
    figdata = load_torch(folder / "figdata.pt", "figure data file")
    claims = load_json(folder / "claims.json", "claims file", list)
    return figdata, claims, load_json(folder / "summary.json", "summary file", dict), tables


def this_run_value(key: tuple[str, str], tables: Mapping[str, Sequence[Mapping]]) -> str:
    """This run's number for one reference row, in percent (mean over seeds; interval when there is one)."""
    kind, field = key
    if kind in ("val_clean_all", "val_masked_all"):
        rows = [r for r in tables["accuracy"] if r["variant"] == field]
        if not rows:
            return "not trained"
        values = [cell(r, kind) for r in rows]
        numbers = [v for v in values if not isinstance(v, NA)]
        return fmt(sum(numbers) / len(numbers), True) if len(numbers) == len(values) else str(
            next(v for v in values if isinstance(v, NA)))
    if kind == "single":  # one seed: its row; several: the row pooled over seeds
        rows = [r for r in tables["single_image"] if r["variant"] == "N" and r["metric"] == field]
        row = ([r for r in rows if r["seed"] == "all"] or rows or [None])[0]
        return ci(row, "value", True) if row else str(NA("not measured in this run"))
    rows = [r for r in tables["probe"] if r["variant"] == "N"]
    values = [cell(r, field) for r in rows]
    numbers = [v for v in values if not isinstance(v, NA)]
    if len(rows) == 1:
        return ci(rows[0], field, True) if f"{field}_lo" in rows[0] else fmt(values[0], True)
    if not rows:
        return str(NA("no standard model N"))
    return fmt(sum(numbers) / len(numbers), True) if len(numbers) == len(values) else str(
        next(v for v in values if isinstance(v, NA)))


def _g(v: Any) -> str:
    """A JSON number (None / NaN: n/a) as 3 significant digits; text (an n/a with its reason) as is."""
    return v if isinstance(v, str) else fmt(math.nan if v is None else float(v))


def claims_section(claims: Sequence[Mapping], rule: str) -> str:
    """The claims table (headline part and combined verdict), the verdict rule and why pooled and per-seed verdicts
    can differ; every part of every claim is in :func:`claims_appendix`."""
    rows = [[c["claim"], c["text"], c["statistic"], PLAIN.judged(c),
             f"{c['direction']} {_g(c['threshold'])}" + (f", negligible within +-{_g(c['delta'])}" if c.get("delta")
                                                          else "") if c["direction"] else "", f"**{c['verdict']}**",
             f"{c['seeds_holding']} of {c['seeds']}" if "seeds" in c else "n/a (no per-seed interval)", c["study"]]
            for c in claims]
    return "\n\n".join([_table(["#", "claim", "statistic (headline part)", "estimate [interval]", "rule", "verdict",
                                 "holds in seeds", "study"], rows),
                         "**Verdict rule.** " + rule.replace(" A claim holds", "\n\nA claim holds", 1),
                         POOLED_VS_SEEDS, "Every part of every claim, with its per-seed values: Appendix A."])


def claims_appendix(claims: Sequence[Mapping]) -> str:
    """Per claim a table of its parts (the verdict's, then the second lines, which are not in the verdict): statistic,
    estimate [interval], rule, verdict, per-seed estimates and the seeds an inconclusive part would need; then the
    claim's extra values and its note."""
    out = []
    for c in claims:
        rows = [[line, p["statistic"], PLAIN.judged(p), f"{p['direction']} {_g(p['threshold'])}{_delta(p)}",
                 p["verdict"], _per_seed(p), _settle(p)]
                for line, group in (("verdict", c["parts"]), ("second line", c.get("secondary", [])))
                for p in group]
        text = f"**Claim {c['claim']}: {c['verdict']}.** {c['text']}"
        text += "\n\n" + (_table(["line", "statistic", "estimate [interval]", "rule", "verdict", "per seed",
                                   "seeds to settle"], rows) if rows else
                           f"No part measured: {c.get('reason') or c['note'] or 'not measured'}.")
        if c["info"]:
            text += "\n\nAlso: " + ", ".join(f"{k.replace('_', ' ')} = {_g(v)}" for k, v in c["info"].items()) + "."
        if c["note"]:
            text += f"\n\nNote: {c['note']}"
        out.append(text)
    return "\n\n".join(out)


GLOSSARY = (
    "*Terms.* A **mask** keeps each Fourier frequency of the input with a weight in [0, 1]; its **size** is its mean "
    "over the plane. **Dataset masks** are one mask per model fitted on many images (and on disjoint **folds** of "
    "them); **single-image masks** one per image. **Raw** energies compare masks as fitted; **size-matched** ones "
    "subtract those of the mask's radial twin (its values re-placed by distance from the origin, largest nearest: what "
    "its size alone would put in each band); at **equal budget** every mask is fitted at the same size; a network's "
    "**budget needed** is the size at which such masks first keep a set share of its held-out accuracy.\n\nA verdict "
    "is **negligible** when the interval lies within the claim's smallest effect of interest: the effect is "
    "absent, not just unproven. Intervals: 95 %, t over training seeds.")


POOLED_VS_SEEDS = (
    "**Why the pooled verdict can differ from the per-seed ones.** A part's verdict is judged on one t interval over "
    "the seeds' means (S - 1 degrees of freedom: 2 with 3 seeds, where t = 4.30 at 95 %); each seed's own verdict "
    "on an interval over that seed's folds or images (3 or 95 degrees of freedom in the default run), which holds the "
    "network fixed and "
    "so leaves out how much another training run would differ.\n\nSo every seed can hold while the pooled interval, "
    "wide from few seeds and from the spread between them, contains the threshold (the pooled verdict asks more: "
    "that the recipe, not these networks, has the effect); and a pooled interval can hold while a seed's own does "
    "not, when that seed's folds are few and noisy. Where a part is inconclusive, 'seeds to settle' says how many "
    "seeds would settle it at this run's own between- and within-seed variances with the estimate as measured.")


def _delta(p: Mapping[str, Any]) -> str:
    """`` (negligible within +-delta; interval half-width h)`` of a part with a delta, else ""."""
    if p.get("delta") is None:
        return ""
    half = p.get("half_width")
    return (f" (negligible within +-{_g(p['delta'])}"
            + (f"; interval half-width {_g(half)}" if isinstance(half, (int, float)) and math.isfinite(half) else "")
            + ")")


def _settle(p: Mapping[str, Any]) -> str:
    """The seeds that would settle an inconclusive part (``more than 100`` when none up to 100 would), else ""."""
    if "seeds_to_settle" not in p:
        return ""
    return str(p["seeds_to_settle"]) if p["seeds_to_settle"] is not None else "more than 100"


def _per_seed(p: Mapping[str, Any]) -> str:
    """``e [lo, hi]; ... (holds in k of S)`` for a part with per-seed values, else ""."""
    seeds = p.get("per_seed") or []
    if not seeds:
        return ""
    return f"{'; '.join(PLAIN.judged(s) for s in seeds)} (holds in {p['seeds_holding']} of {p['seeds']})"


def header_section(summary: Mapping, cfg: ReportConfig, commit: str, generated: str, report_seconds: float) -> str:
    """``## Set-up``: the table of what was run."""
    counts = summary.get("counts", {})
    masks = summary.get("masks", {})
    single, dataset, budget = masks.get("single", {}), masks.get("dataset", {}), masks.get("budget", {})
    acfg = summary["config"]
    attack = summary.get("train", {}).get("attack", {})
    agg_seconds = sum(summary["aggregate_seconds"].values())

    def v(x: Any, absent: str = "n/a (not recorded)") -> str:  # a summary value that may be missing
        return absent if x is None else str(x)

    source = f" ({summary['source']})" if summary.get("source") else ""
    peak = f"{summary['matmul_peak_gflops']:.0f} GFLOP/s" if summary.get("matmul_peak_gflops") else "n/a (not recorded)"
    controls_s = summary.get("controls_seconds")
    controls = "n/a (not recorded)" if controls_s is None else f"{controls_s:.0f} s"
    rows = [
        ["dataset", f"{v(summary.get('dataset'))}{source}, {summary['image_size'][0]} x "
                    f"{summary['image_size'][1]}, {len(summary['classes'])} classes; images train / val / test: "
                    f"{v(counts.get('train'))} / {v(counts.get('val'))} / {v(counts.get('test'))}"],
        ["architecture", f"{v(summary.get('arch'))}, {v(summary.get('train', {}).get('epochs'))} epochs"],
        ["variants", ", ".join(f"{x} ({variant_label(x)})" for x in summary["variants"])],
        ["seeds", ", ".join(map(str, summary["seeds"]))],
        ["PGD (variant A; single-image x_A)", f"L-inf eps {v(attack.get('eps'))}, step {v(attack.get('alpha'))}, "
                                              f"{v(attack.get('steps'))} steps, {v(attack.get('units'))} units"],
        ["masks", f"{summary['kind']} layout; dataset: " + (
                  f"sparsest budget keeping {v(dataset.get('acc_ratio'))} of the clean accuracy on its fit images, "
                  f"by search (down by {v(budget.get('step'))} from the identity, then {v(budget.get('rounds'))} "
                  f"bisections; a round's fit <= budget_curve.ROUND_STEPS x {v(budget.get('max_steps'))} steps)"
                  if budget.get("search") else
                  f"{v(dataset.get('method'))} method (lam {v(dataset.get('lam'))}"
                  f"{' at the start' if dataset.get('method') == 'constrained' else ''}), lr {v(dataset.get('lr'))}, "
                  f"<= {v(dataset.get('max_steps'))} steps")
                 + f", fit on {v(dataset.get('fit_n'), 'all')} val images and on "
                  f"{v(dataset.get('folds'))} folds of them; "
                  f"single-image: lam {v(single.get('lam'))}, lr {v(single.get('lr'))}, "
                  f"<= {v(single.get('max_steps'))} steps, "
                  f"{', '.join(map(str, summary['single_n'].values()))} images per seed"],
        ["statistics", f"{acfg['radial_bands']} rings, {acfg['angular_bands']} wedges; "
                       f"{100 * (1 - acfg['alpha']):.0f}% intervals: jackknife-t over the {len(summary['seeds'])} "
                       f"seed(s) (over folds or images with one seed; per seed over its own); bootstrap "
                       f"{acfg['n_boot']} resamples where a statistic has no t form, seed {acfg['seed']}"],
        ["commit", f"`{commit}`"],
        ["generated", generated],
        ["run time", f"train {summary['train_seconds']:.0f} s, masks {summary['masks_seconds']:.0f} s, controls "
                     f"{controls} (sums over models), aggregate "
                     f"{agg_seconds:.0f} s, report {report_seconds:.0f} s; fp32 matmul peak of "
                     f"the machine: {peak} (2048 x 2048, measured by the aggregate stage; scale by yours)"],
    ]
    return "## Set-up\n\n" + _table(["", ""], rows)


def _note(row: Mapping[str, Any], column: str) -> str:
    """``"; <note>"`` when the row's reason column annotates a value that is present (images left out,
    ...; ``column`` "" for a note on the whole row), else ""."""
    text = parse_reasons(row.get("reason") or "").get(column, "")
    shown = not column or not isinstance(cell(row, column), NA)  # a missing value shows its reason already
    return f"; {text}" if text and shown else ""


def _counts(row: Mapping[str, Any]) -> str:
    """``n (k folds, P permutations)`` of a probe row."""
    n, folds, perms = (str(v) if isinstance(v, NA) else f"{v:.0f}" for v in
                       (cell(row, k) for k in ("n", "folds", "permutations")))
    return f"{n} ({folds} folds, {perms} permutations)"


def _converged(row: Mapping[str, Any]) -> str:
    """Whether all of a probe row's L-BFGS fits converged (column ``converged``, written as True / False)."""
    value = str(row.get("converged", ""))
    return {"True": "yes", "False": "no (stopped at max_iter)"}.get(value, str(NA("not recorded")))


def _flag(value: Any) -> bool | None:
    """A ``converged`` / ``met`` cell as written to CSV ("True" / "False"; empty = n/a) -> bool or None."""
    return {"True": True, "False": False}.get(str(value))


def fits_section(rows: Sequence[Mapping[str, Any]]) -> str:
    """Convergence of every fitted mask (mask_fits.csv): a summary row per model and a flag naming each
    shared mask that hit the step cap or found nothing sparser than the identity."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    table, flagged = [], []
    for m in models:
        own = [r for r in rows if r["model"] == m]
        ds = next(r for r in own if r["mask"] == "dataset")
        folds = [r for r in own if r["mask"].startswith("fold:")]
        classes = [r for r in own if r["mask"].startswith("class:") and _flag(r["converged"]) is not None]
        single = next((r for r in own if r["mask"] == "single (mean)"), {})
        flagged += [f"{m} {r['mask']}" for r in own if _flag(r["converged"]) is False]
        fold_means = [cell(r, "mean") for r in folds if not isinstance(cell(r, "mean"), NA)]
        class_mins = [cell(r, "min") for r in classes if not isinstance(cell(r, "min"), NA)]
        table.append([
            m, f"{fmt(cell(ds, 'mean'))} / {fmt(cell(ds, 'support'))} / {fmt(cell(ds, 'min'))}",
            f"{fmt(cell(ds, 'steps'))}, {'yes' if _flag(ds['converged']) else 'NO'}",
            f"{sum(bool(_flag(r['converged'])) for r in folds)}/{len(folds)}; mean "
            f"{fmt(min(fold_means)) if fold_means else 'n/a'}-{fmt(max(fold_means)) if fold_means else 'n/a'}",
            f"{sum(bool(_flag(r['converged'])) for r in classes)}/{len(classes)}; largest min "
            f"{fmt(max(class_mins)) if class_mins else 'n/a'}",
            f"{fmt(cell(single, 'steps'))}, {fmt(cell(single, 'converged'), True)}" if single else "n/a"])
    head = ("Every dataset, fold and class mask converged: each stopped by its rule (the sparsest mask meeting the "
            "accuracy rule stopped improving), none at the step cap." if not flagged else
            f"**Not converged** (hit the step cap, or no mask sparser than the identity met the rule): "
            f"{', '.join(flagged)}. Their numbers describe the step budget, not the network.")
    return head + "\n\n" + _table(
        ["model", "dataset mask: mean / support / smallest", "steps, converged", "folds converged; mean range",
         "classes converged; largest smallest entry", "single-image: mean steps, share stopped by rule"], table)


FIGURES = paths.figures_dir(Path(".")).relative_to(paths.report_file(Path(".")).parent).as_posix()
"""The figures' folder relative to the report's ("figures"): the report's figure links."""


def render(summary: Mapping, claims: Sequence[Mapping], tables: Mapping[str, Sequence[Mapping]],
           figures: Sequence[Figure], cfg: ReportConfig, commit: str, generated: str,
           report_seconds: float = 0.0) -> str:
    """The report as markdown; figure links are relative to the report's folder (:data:`FIGURES`)."""
    ref = _table(["quantity (%)", "study: VGG11-BN", "study: ResNet-18", "this run [95% interval]"],
                 [[r.quantity, r.vgg or "-", r.resnet or "-", this_run_value(r.key, tables)] for r in REFERENCE])
    def figure(i: int, f: Figure) -> str:
        return (f"### Figure {i}. {f.name[:-4].replace('_', ' ')}\n\n"
                + (f"**Not drawn: {NA(f.na)}.**" if f.na else f"![Figure {i}]({FIGURES}/{f.name})")
                + f"\n*Figure {i}.* {f.caption}")
    numbered = list(enumerate(figures, 1))
    figs = "\n\n".join(figure(i, f) for i, f in numbered if not f.appendix)
    more_figs = "\n\n".join(figure(i, f) for i, f in numbered if f.appendix)
    pgd = [k for k in (tables["accuracy"][0] if tables["accuracy"] else {}) if k.startswith("pgd_acc_")]  # per eps
    acc = _table(["model", "val clean", "val masked", "val masked / clean", "test clean", "test masked",
                  "test masked / clean", "mask mean"] + [f"PGD acc, eps {k.removeprefix('pgd_acc_')}" for k in pgd],
                 [[r["model"], fmt(cell(r, "val_clean"), True), fmt(cell(r, "val_masked"), True), ci(r, "val_ratio"),
                   fmt(cell(r, "test_clean"), True), fmt(cell(r, "test_masked"), True), ci(r, "test_ratio"),
                   fmt(cell(r, "mask_mean"))] + [fmt(cell(r, k), True) for k in pgd] for r in tables["accuracy"]])
    single = _table(["model", "metric", "value [95% interval]", "n"],
                    [[r["model"], r["metric"], ci(r, "value") + _note(r, "value"), r["n"]]
                     for r in tables["single_image"]])
    probe = _table(["model", "train", "test [95%]", "permuted test [95%]", "permuted sd", "chance",
                    "n images (folds, permutations)", "converged"],
                   [[r["model"], fmt(cell(r, "train_acc"), True), ci(r, "test_acc", True) + _note(r, ""),
                     ci(r, "permuted_test_acc", True), fmt(cell(r, "permuted_sd"), True), fmt(cell(r, "chance"), True),
                     _counts(r), _converged(r)]
                    if not isinstance(cell(r, "train_acc"), NA) else [r["model"], str(cell(r, "train_acc"))] +
                    ["n/a (not probed)"] * 6 for r in tables["probe"]])
    heat = _table(["model", "mean error", "max error", "Spearman rho with dataset mask"],
                  [[r["model"], fmt(cell(r, "mean_error")), fmt(cell(r, "max_error")),
                    fmt(cell(r, "corr_with_dataset_mask"))] for r in tables["heatmaps"]])
    acc_n = summary["accuracy_n"]
    fit_n = summary.get("masks", {}).get("dataset", {}).get("fit_n", "missing")
    fitted = ("all val images" if fit_n is None else f"the first {fit_n} val images" if fit_n != "missing"
              else "val images (how many: not recorded)")
    return "\n\n".join([
        f"# {cfg.title}\n\nReproduction of Karantzas et al. 2022 (docs/study.md): does adversarial training make an "
        "image classifier rely on other Fourier frequencies, as read through learned masks over the input's spectrum?",
        "## What this run found\n\n" + headline.section(claims) + "\n\n" + GLOSSARY,
        header_section(summary, cfg, commit, generated, report_seconds),
        "## Reference numbers\n\nThe study's numbers (Imagenette, 5 classes, 128 x 128; docs/study.md) next to this "
        "run's. Dataset, resolution and architecture differ, so levels are not expected to match; the claims below "
        "are about directions and contrasts. Accuracies: full val split, from the masks stage; single-image and "
        "probe numbers: re-evaluated by the aggregate stage.\n\n" + ref,
        "## Claims\n\n" + claims_section(claims, summary["verdict_rule"]),
        "## What the masks show, and what they do not\n\n" + controls_section(claims, tables),
        "## Masks at equal budget\n\n" + budget_report.section(tables, claims),
        "## Figures\n\n" + figs,
        "## Appendix A. Every part of every claim\n\n" + claims_appendix(claims),
        f"## Appendix B. Tables\n\n### Dataset masks\n\nRe-scored on the first {acc_n.get('val')} val images (the "
        f"dataset mask was fitted on {fitted}) and the first {acc_n.get('test')} test images (held out); "
        "intervals: bootstrap over images.\n\n" + acc,
        "### Mask fits\n\nFull-plane mean, support (share above 1e-3) and smallest entry of each model's dataset "
        "mask; whether each shared mask stopped by its rule (results/mask_fits.csv has every mask).\n\n"
        + fits_section(tables["mask_fits"]),
        "### Single-image masks\n\nAgreement with the model's own clean prediction (masked, complement, PGD image "
        "unmasked, PGD image under the clean mask: continuous / binary, PGD image under its own mask), and the "
        "similarity of x and the masked x in pixels (SSIM, correlation). SSIM: uniform 7 x 7 window, population "
        "variances (scikit-image's structural_similarity with gaussian_weights=False, use_sample_covariance=False), "
        "not the Gaussian-window SSIM of Wang et al. 2004.\n\n" + single,
        "### Linear probe\n\nMultinomial logistic regression on the flattened single-image masks (values as they "
        "are, L2 penalty on the weights), stratified k-fold cross-validation: every probed image is a test image "
        "once. Train: mean accuracy of the folds' fits on their own images; permuted: the same with the labels "
        "permuted (per image, the mean over the permutations; sd: over the permutations); chance: the "
        "majority-class share of the probed images. Intervals: bootstrap over images.\n\n" + probe,
        "### Fourier heat maps\n\n" + heat,
        "## Appendix C. Controls\n\n" + controls_tables(tables),
        *(["## Appendix D. Figures per model\n\n" + more_figs] if more_figs else []),
    ]) + "\n"


# What a run's results follow from: code, params, the pipeline and the pinned packages. Not its outputs
# (metrics/, results/, reports/, dvc.lock), which every run rewrites, nor profiles/ (stages read params.yaml).
RUN_INPUTS = ("src", "stages", "params.yaml", "dvc.yaml", "pyproject.toml")


def git_commit(root: Path = Path(".")) -> str:
    """Short commit hash of HEAD, with "+ uncommitted changes" when a run input (:data:`RUN_INPUTS`, paths
    relative to ``root``) differs from HEAD, new untracked files included; "unknown" outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal", "--", *RUN_INPUTS],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")
