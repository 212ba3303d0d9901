"""freqbias: learned Fourier masks for measuring the frequency bias of image classifiers.

A reproduction of Karantzas et al., "Understanding robustness and generalization of artificial
neural networks through Fourier masks" (Front. AI 2022), organised as one module per concept:

- :mod:`freqbias.config`   params loading and validation (one-line errors naming the key)
- :mod:`freqbias.schema`   the whole params file checked up front: every reader, no unknown keys
- :mod:`freqbias.runtime`  run-only settings from the environment (progress bars, device, chunk size, memory)
- :mod:`freqbias.cli`      stage plumbing: logging, params check, one-line errors
- :mod:`freqbias.io`       atomic writes of tensors, JSON and CSV (with the user's umask), SHA-256
- :mod:`freqbias.paths`    the file layout of data, models, masks, metrics, results and reports
- :mod:`freqbias.artifacts` the masks stage's files as typed records with ``save`` / ``load``
- :mod:`freqbias.data`     IDX reader, dataset registry, splits
- :mod:`freqbias.planted`  the ``planted`` dataset's ground truth (gratings in a known band)
- :mod:`freqbias.checkpoints` external checkpoints: download with resume, SHA-256 check
- :mod:`freqbias.models`   model registry; a ``Normalize`` first layer so models take [0, 1] pixels
- :mod:`freqbias.attacks`  PGD L-inf in [0, 1] pixel space
- :mod:`freqbias.loops`    shared pieces of minibatch loops: batches, OneCycle, prediction in eval mode
- :mod:`freqbias.variants` the registry of training variants (N, A, S, T, R, G): label, colour, augmentation, PGD
  or not
- :mod:`freqbias.training` the shared augmentation, the training loop, evaluation
- :mod:`freqbias.stage_train` the train stage's metrics of one trained model
- :mod:`freqbias.stage_evaluate` the evaluate stage's clean and PGD accuracy of one trained model
- :mod:`freqbias.fourier`  Fourier masks: parametrisations, statistics, masked prediction
- :mod:`freqbias.fitting`  fitting masks: loss, stopping rule, dataset/class/single-image fitting, ``masks`` params
- :mod:`freqbias.stage_selection` the selection stage: the study's image selection, saved and loaded
- :mod:`freqbias.single_image` what single-image masks keep: complements and restoration on PGD images
- :mod:`freqbias.budgeted` budgeted masks: the best mask at a fixed size, and the sparsest size by search
- :mod:`freqbias.budget_curve` accuracy against budget: a model's budget ladder and its masks at equal budget
- :mod:`freqbias.stage_masks` the masks stage's work for one model
- :mod:`freqbias.stage_budgets` the budgets stage's work for one model: its budget ladder and equal-budget folds
- :mod:`freqbias.stage_yardstick` the yardstick stage: a trained seed's single-image masks on another seed's images
- :mod:`freqbias.na`       missing values with their reasons (``n/a (reason)``)
- :mod:`freqbias.bootstrap` percentile bootstrap intervals over images, seeds and strata
- :mod:`freqbias.band_geometry` radial/angular band geometry, band energies of one mask
- :mod:`freqbias.bands`    band energies of every model's masks, band statistics over models
- :mod:`freqbias.runs`     the aggregate's params and the models of one aggregation (``Run``)
- :mod:`freqbias.measures` per-model measurements: loading masks, what single-image masks keep
- :mod:`freqbias.probe`    linear probe from single-image masks to the class
- :mod:`freqbias.baselines` filtered accuracy, Fourier heat map, heat map vs mask correlation
- :mod:`freqbias.claim_registry` the claims, one entry each (text, study value, delta, question, measure)
- :mod:`freqbias.claims`   the claims of docs/study.md with their verdicts
- :mod:`freqbias.budget_results` the aggregate's budget tables: accuracy against budget, X - N at equal budget
- :mod:`freqbias.budget_report` the report's budget section and its two figures
- :mod:`freqbias.tables`   the aggregate stage's result tables
- :mod:`freqbias.figdata`  the arrays the report's figures need
- :mod:`freqbias.stage_aggregate` the aggregate stage: order of the measurements, results/
- :mod:`freqbias.plots`    one function per figure
- :mod:`freqbias.report_figures` the report's params and figures
- :mod:`freqbias.stage_report`   the markdown report
- :mod:`freqbias.headline` the report's opening "What this run found", generated from the claims
- :mod:`freqbias.claims_figure` one figure for every claim, and its dvc plots table (each part's margin)
- :mod:`freqbias.profiles` named overlays on params.yaml (paper, cifar10, tiny)
- :mod:`freqbias._interrupt` Ctrl-C ends a stage with one line and exit status 130 from its first line on, imports
  included
- :mod:`freqbias.lockfile` ``make repro`` first sets aside a ``dvc.lock`` that a Ctrl-C left damaged
- :mod:`freqbias.class_rule` The second side of a class mask's rule: it must not send other classes' images into
  its class
- :mod:`freqbias.control_claims` The controls in the aggregate stage: tables, claims 9-11 and the plain-words
  findings of ...
- :mod:`freqbias.stage_controls` The controls stage's work for one model (docs/study.md, "Controls"): equal-budget ...
- :mod:`freqbias.controls` Controls for the masks of one model: what a learned mask shows beyond a plain low-pass ...
- :mod:`freqbias.findings` The report's "What the masks show, and what they do not" section: the controls' verdicts
  ...
- :mod:`freqbias.fit_methods` How a shared mask's fit moves its sparsity weight and lr: the fit methods of ...
- :mod:`freqbias.frequency_orders` Frequency orders as a registry: what each one ranks first, its readable label,
  and how it ...
- :mod:`freqbias.frozen` The frozen copy of a trained net that masks are fitted (and PGD images crafted) against: ...
- :mod:`freqbias.mask_groups` The groups of one model's shared-mask fit, by role: the dataset mask's images, one
  group ...
- :mod:`freqbias.orders` Binary masks of a given budget on the rfft grid and a net's predictions under them: the ...
- :mod:`freqbias.parametrisation` Mask parametrisations: one object per way of storing a Fourier mask for H x W images
- :mod:`freqbias.perf` How fast this machine is: the fp32 matmul peak that every speed in this project is quoted ...
- :mod:`freqbias.plot_data` Long-format tables for ``dvc plots`` (dvc.yaml's top-level ``plots:``), written under ...
- :mod:`freqbias.randomisation` Claim 11 in the aggregate stage: do the masks depend on the trained weights? ...
- :mod:`freqbias.shared_masks` Masks shared by a group of images: dataset-, fold- and class-level masks, fitted
  together
- :mod:`freqbias.size_null` Band statistics at equal size: the radial twin of a mask, a null that keeps its size
  and ...
- :mod:`freqbias.study` The study's reference numbers and the claims' smallest effects (Karantzas et al
- :mod:`freqbias.sweep` A sweep report from finished DVC experiments: each headline statistic against the swept param
- :mod:`freqbias.textfmt` How the report writes numbers and tables: one Style per way of writing a number, and the ...
- :mod:`freqbias.verdicts` Verdicts and the directions claims are judged in, as small str-valued types

Module names: the work of stage X (``stages/X.py``) beyond plain library calls is in ``freqbias.stage_X``
(``stage_train``, ``stage_evaluate``, ``stage_selection``, ``stage_masks``, ``stage_budgets``, ``stage_controls``,
``stage_yardstick``, ``stage_aggregate``, ``stage_report``; fetch needs none); every other module is a concept.
``sweep`` is the one command-line tool over finished experiments (``python -m freqbias.sweep``). This file runs
nothing: it is no stage's dependency (tests/test_dependencies.py).
"""
