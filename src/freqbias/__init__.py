"""freqbias: learned Fourier masks for measuring the frequency bias of image classifiers.

A reproduction of Karantzas et al., "Understanding robustness and generalization of artificial
neural networks through Fourier masks" (Front. AI 2022), organised as one module per concept:

- :mod:`freqbias.config`   params loading and validation (one-line errors naming the key)
- :mod:`freqbias.schema`   the whole params file checked up front: every reader, no unknown keys
- :mod:`freqbias.io`       atomic writes of tensors, JSON and CSV
- :mod:`freqbias.data`     IDX reader, dataset registry, splits, the ``planted`` ground truth
- :mod:`freqbias.checkpoints` external checkpoints: download with resume, SHA-256 check
- :mod:`freqbias.models`   model registry; a ``Normalize`` first layer so models take [0, 1] pixels
- :mod:`freqbias.attacks`  PGD L-inf in [0, 1] pixel space
- :mod:`freqbias.training` training variants (N, A, S, T, R, G), evaluation
- :mod:`freqbias.fourier`  Fourier masks: parametrisations, loss, dataset/class/single-image fitting
- :mod:`freqbias.single_image` the study's image selection; complements and restoration on PGD images
- :mod:`freqbias.spectral` radial/angular band energies, bootstrap, probes, frequency baselines
- :mod:`freqbias.analysis` the aggregate stage: statistics over all models, claims with verdicts
- :mod:`freqbias.plots`    one function per figure
- :mod:`freqbias.report`   the markdown report
- :mod:`freqbias.profiles` named overlays on params.yaml (paper, cifar10, tiny)
"""

__version__ = "0.1.0"
