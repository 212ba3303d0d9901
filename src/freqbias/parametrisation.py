"""Mask parametrisations: one object per way of storing a Fourier mask for H x W images.

A mask acts on the *normalised* image ``z = model.normalize(x)`` (B, C, H, W), the tensor that enters
``model.net``; its full-plane view is real, in [0, 1] and UNSHIFTED (zero frequency at ``[0, 0]``).
A parametrisation owns everything that depends on how the mask is stored: the parameter shape of one
mask (:attr:`Parametrisation.shape`), ones to start from (:meth:`~Parametrisation.init`), filtering
(:meth:`~Parametrisation.apply`, one shared mask or one per image), the L1 weights (the share of the
full plane each parameter stands for, summing to 1), the clamp to [0, 1], the full plane
(:meth:`~Parametrisation.to_full`), sparsity (full-plane mean) and support. Three:

- :class:`Rfft` (``"rfft"``, default): (H, W//2+1), ``z~ = irfft2(M * rfft2(z), s=(H, W))``; real by
  construction, no redundant entries off the DC / Nyquist columns.
- :class:`Full` (``"full"``, as published): (H, W), ``z~ = Re(ifft2(M * fft2(z)))``. Taking the real part
  makes ``M(k)`` and ``M(-k)`` act together, as their mean.
- :class:`Isotropic` (``"isotropic"``): (R,), one value per radial ring ``round(|k|)`` (``k`` in cycles
  per image), expanded to the rfft layout and applied as rfft: a control without orientation.

Rfft and full describe the same family of filters (:meth:`Rfft.to_full` gives the point-symmetric full
mask with the same effect). The L1 term weights every parameter by the full-plane entries it stands
for, so a mask's loss equals its full equivalent's, and because Adam is invariant to the gradient's
scale, fitting rfft or full from ones follows the same path (up to Adam's eps). The masks stage picks
one from ``masks.kind`` (:data:`PARAMETRISATIONS`, :func:`parametrisation`); stored artifacts record the
name (``kind``) and turn it back into the object the same way.
"""

from __future__ import annotations

from typing import TypeVar

import torch

__all__ = ["Full", "Isotropic", "PARAMETRISATIONS", "Parametrisation", "Rfft", "check_parametrisation",
           "parametrisation", "parametrisation_class", "register_parametrisation"]


class Parametrisation:
    """How masks for ``h`` x ``w`` images are stored. Subclasses set :attr:`kind` and override
    :attr:`shape`, :meth:`apply`, :meth:`to_full` and :meth:`weights`. Equal when of one class and size."""

    kind: str = ""

    def __init__(self, h: int, w: int):
        if h < 1 or w < 1:
            raise ValueError(f"image size must be positive, got {h}x{w}")
        self.h, self.w = int(h), int(w)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.h}, {self.w})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and (self.h, self.w) == (other.h, other.w)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.h, self.w))

    @property
    def shape(self) -> tuple[int, ...]:
        """The parameter shape of one mask."""
        raise NotImplementedError

    def init(self, n: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``n`` masks of ones (identity filters): (n, *shape)."""
        return torch.ones(n, *self.shape, device=device, dtype=dtype)

    def check(self, m: torch.Tensor, batch: int | None = None) -> None:
        """Raise ``ValueError`` (one line) unless ``m`` is one mask (*shape) or a stack (n, *shape), with n
        in (1, ``batch``) when ``batch`` is given."""
        k = len(self.shape)
        if m.dim() not in (k, k + 1) or tuple(m.shape[m.dim() - k:]) != self.shape:
            raise ValueError(f"{self.kind} mask of shape {tuple(m.shape)} does not fit {self.h}x{self.w} images: "
                             f"expected {self.shape}, optionally with a leading batch dimension")
        if m.dim() == k + 1 and batch is not None and m.shape[0] not in (1, batch):
            raise ValueError(f"per-image masks: got {m.shape[0]} masks for {batch} images")

    def check_images(self, z: torch.Tensor) -> None:
        """Raise ``ValueError`` (one line) unless ``z`` is a batch of H x W images (B, C, H, W)."""
        if z.dim() != 4 or tuple(z.shape[-2:]) != (self.h, self.w):
            raise ValueError(f"{self.kind} masks for {self.h}x{self.w} images do not fit images of shape "
                             f"{tuple(z.shape)}")

    def is_shared(self, m: torch.Tensor) -> bool:
        """Whether ``m`` is one mask (*shape) rather than a stack (n, *shape)."""
        return m.dim() == len(self.shape)

    def apply(self, z: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Filter normalised images ``z`` (B, C, H, W) with mask ``m``: (*shape), shared by all images, or
        (B, *shape), one per image; broadcast over channels. Returns (B, C, H, W), real, normalised units."""
        raise NotImplementedError

    def to_full(self, m: torch.Tensor) -> torch.Tensor:
        """The full UNSHIFTED plane (..., H, W) of float masks ``m`` (..., *shape), with the same effect:
        ``apply(z, m) == Re(ifft2(fft2(z) * to_full(m)))``."""
        raise NotImplementedError

    def weights(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Weights (*shape) summing to 1: the share of the full H x W plane each parameter stands for."""
        raise NotImplementedError

    def _weighted(self, values: torch.Tensor) -> torch.Tensor:
        weights = self.weights(device=values.device, dtype=values.dtype)
        return (values * weights).sum(dim=tuple(range(-len(self.shape), 0)))

    def l1_ratio(self, m: torch.Tensor) -> torch.Tensor:
        """``||M||_1 / ||M_init||_1`` over the full plane (M_init = ones), per mask: shape ``m.shape[:-k]``."""
        return self._weighted(m.abs())

    def sparsity(self, m: torch.Tensor) -> torch.Tensor:
        """Mean mask value over the full plane (1 = identity, 0 = everything removed), per mask."""
        return self.l1_ratio(m)

    def support(self, m: torch.Tensor, threshold: float = 1e-3) -> torch.Tensor:
        """Share of the full plane where the mask exceeds ``threshold``, per mask."""
        weights = self.weights(device=m.device, dtype=m.dtype)
        return ((m > threshold).to(weights.dtype) * weights).sum(dim=tuple(range(-len(self.shape), 0)))

    @staticmethod
    def project_(m: torch.Tensor) -> torch.Tensor:
        """Clamp masks to [0, 1] in place (after every optimiser step); return them."""
        return m.clamp_(0.0, 1.0)

    def project_budget(self, m: torch.Tensor, budget: torch.Tensor | float, iters: int = 40) -> torch.Tensor:
        """The nearest masks (in the plane-weighted L2 norm) to ``m`` (G, *shape) that lie in [0, 1] with full-plane
        mean exactly ``budget`` (G,) or a scalar, in (0, 1]: ``clamp(m - tau_g, 0, 1)`` with ``tau_g`` found by
        bisection (``iters`` halvings of a bracket of width <= 2, float64). A budget mask's size is set here, not by
        where an optimiser stopped (:mod:`freqbias.budgeted`)."""
        weights = self.weights(device=m.device, dtype=torch.float64)
        flat = m.detach().to(torch.float64).reshape(len(m), -1)
        w = weights.reshape(-1)
        target = torch.as_tensor(budget, dtype=torch.float64, device=m.device).expand(len(m))
        lo, hi = flat.min(dim=1).values - 1.0, flat.max(dim=1).values   # mean(lo) = 1 >= target >= 0 = mean(hi)
        for _ in range(iters):
            tau = (lo + hi) / 2
            above = ((flat - tau[:, None]).clamp(0.0, 1.0) * w).sum(dim=1) > target
            lo, hi = torch.where(above, tau, lo), torch.where(above, hi, tau)
        out = (flat - ((lo + hi) / 2)[:, None]).clamp(0.0, 1.0)
        return out.reshape(m.shape).to(m.dtype)


PARAMETRISATIONS: dict[str, type[Parametrisation]] = {}

P = TypeVar("P", bound=type[Parametrisation])


def register_parametrisation(cls: P) -> P:
    """Add ``cls`` to :data:`PARAMETRISATIONS` under its :attr:`~Parametrisation.kind` (``masks.kind`` then accepts
    it: the masks, controls, aggregate and report stages read masks only through the class); return it, so that it
    can decorate the class. ``ValueError`` for an empty or already registered kind.

    Extension point: a new parametrisation is a subclass with ``kind``, ``shape``, ``apply``, ``to_full`` and
    ``weights``, registered here (stages run as subprocesses that import this module, so its entry belongs in this
    file)."""
    if not (isinstance(cls, type) and issubclass(cls, Parametrisation)) or not cls.kind:
        raise ValueError(f"a parametrisation is a Parametrisation subclass with a kind, got {cls!r}")
    if cls.kind in PARAMETRISATIONS:
        raise ValueError(f"mask kind {cls.kind!r} is already registered ({PARAMETRISATIONS[cls.kind].__name__})")
    PARAMETRISATIONS[cls.kind] = cls
    return cls


@register_parametrisation
class Rfft(Parametrisation):
    """The rfft half-plane (H, W//2+1): every entry off the DC and (even W) Nyquist columns stands for
    ``k`` and ``-k``."""

    kind = "rfft"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.h, self.w // 2 + 1)

    def apply(self, z: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        self.check_images(z)
        self.check(m, batch=z.shape[0])
        m = m if self.is_shared(m) else m.unsqueeze(1)
        return torch.fft.irfft2(torch.fft.rfft2(z) * m, s=(self.h, self.w))

    def weights(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Columns ``1 .. ceil(W/2)-1`` stand for two entries (``k`` and ``-k``), column 0 and, for even W,
        the Nyquist column for one; divided by H W."""
        hm, wm = self.shape
        weights = torch.ones(hm, wm, device=device, dtype=dtype)
        last = wm if self.w % 2 else wm - 1  # the Nyquist column (even W) has no mirror
        weights[:, 1:last] = 2.0
        return weights / (self.h * self.w)

    def to_full(self, m: torch.Tensor) -> torch.Tensor:
        """A column ``kx > W//2`` is the mirror ``M[(-ky) mod H, W - kx]``; on the DC and (even W) Nyquist
        columns ``irfft2`` drops the anti-Hermitian part of its input, so there an entry ``M[ky, kx]`` acts on
        both ``k`` and ``-k`` with weight 1/2, and the full mask holds the mean of ``M[ky, kx]`` and its mirror
        ``M[-ky, kx]``. Hence ``irfft2(rfft2(z) * m) == ifft2(fft2(z) * to_full(m))``, imaginary part zero."""
        if m.dim() < 2 or tuple(m.shape[-2:]) != self.shape:
            raise ValueError(f"rfft mask of shape {tuple(m.shape)} does not fit {self.h}x{self.w} images: "
                             f"expected (..., {self.shape[0]}, {self.shape[1]})")
        h, wm, width = self.h, self.shape[1], self.w
        neg_rows = (-torch.arange(h, device=m.device)) % h
        full = m.new_empty(*m.shape[:-1], width)
        full[..., :wm] = m
        mirrored_cols = width - torch.arange(wm, width, device=m.device)
        full[..., wm:] = m[..., neg_rows, :][..., mirrored_cols]
        for c in [0] if width % 2 else [0, wm - 1]:
            full[..., c] = 0.5 * (m[..., c] + m[..., neg_rows, c])
        return full


@register_parametrisation
class Full(Parametrisation):
    """The full plane (H, W), as published; every entry stands for itself."""

    kind = "full"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.h, self.w)

    def apply(self, z: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        self.check_images(z)
        self.check(m, batch=z.shape[0])
        m = m if self.is_shared(m) else m.unsqueeze(1)
        return torch.fft.ifft2(torch.fft.fft2(z) * m).real

    def weights(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``1 / (H W)`` everywhere."""
        return torch.ones(self.h, self.w, device=device, dtype=dtype) / (self.h * self.w)

    def to_full(self, m: torch.Tensor) -> torch.Tensor:
        """``m`` itself (checked)."""
        if m.dim() < 2 or tuple(m.shape[-2:]) != self.shape:
            raise ValueError(f"full mask of shape {tuple(m.shape)} does not fit {self.h}x{self.w} images")
        return m


@register_parametrisation
class Isotropic(Parametrisation):
    """One value per radial ring (R,): the unshifted frequency ``k = (ky, kx)`` (signed, cycles per image)
    lies in ring ``round(sqrt(ky^2 + kx^2))``, rings ``0 .. R-1`` with R - 1 the largest. Applied by
    expanding to the rfft layout (:meth:`expand`); ring ``r`` weighs its share of the full plane, so the
    sparsity is the full-plane mean of the expanded mask."""

    kind = "isotropic"

    def __init__(self, h: int, w: int):
        super().__init__(h, w)
        self._full_rings = self._rings(torch.fft.fftfreq(self.w, d=1 / self.w))
        self._rfft_rings = self._rings(torch.fft.rfftfreq(self.w, d=1 / self.w))
        self.rings = int(self._full_rings.max()) + 1

    def _rings(self, kx: torch.Tensor) -> torch.Tensor:
        ky = torch.fft.fftfreq(self.h, d=1 / self.h).double()
        return (ky[:, None].square() + kx.double()[None, :].square()).sqrt().round().long()

    def ring_index(self, full: bool = True) -> torch.Tensor:
        """Ring of every unshifted frequency (H, W), or of every rfft entry (H, W//2+1), long."""
        return (self._full_rings if full else self._rfft_rings).clone()

    @property
    def shape(self) -> tuple[int]:
        return (self.rings,)

    def _check_profiles(self, m: torch.Tensor) -> None:
        if m.dim() < 1 or m.shape[-1] != self.rings:
            raise ValueError(f"isotropic mask of shape {tuple(m.shape)} does not fit {self.h}x{self.w} images: "
                             f"expected (..., {self.rings}) ring values")

    def expand(self, m: torch.Tensor) -> torch.Tensor:
        """Ring profiles (..., R) -> rfft masks (..., H, W//2+1) (differentiable gather)."""
        self._check_profiles(m)
        return m[..., self._rfft_rings.to(m.device)]

    def apply(self, z: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        self.check(m, batch=z.shape[0])
        return Rfft(self.h, self.w).apply(z, self.expand(m))

    def weights(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(R,): the number of full-plane entries in each ring over H W."""
        counts = torch.bincount(self._full_rings.flatten(), minlength=self.rings)
        return counts.to(device=device, dtype=dtype) / (self.h * self.w)

    def to_full(self, m: torch.Tensor) -> torch.Tensor:
        """The expanded full plane (..., H, W): every frequency holds its ring's value."""
        self._check_profiles(m)
        return m[..., self._full_rings.to(m.device)]




def parametrisation(kind: str, h: int, w: int) -> Parametrisation:
    """The parametrisation named ``kind`` (a key of :data:`PARAMETRISATIONS`) for ``h`` x ``w`` images;
    ``ValueError`` (one line) for an unknown name."""
    return parametrisation_class(kind)(h, w)


def parametrisation_class(kind: str) -> type[Parametrisation]:
    """The class registered as ``kind``; ``ValueError`` (one line) for an unknown name."""
    if kind not in PARAMETRISATIONS:
        raise ValueError(f"mask kind must be one of {', '.join(PARAMETRISATIONS)}, got {kind!r}")
    return PARAMETRISATIONS[kind]



def check_parametrisation(cls: object) -> None:
    """Raise ``ValueError`` (one line) unless ``cls`` is one of the classes of :data:`PARAMETRISATIONS`."""
    if not (isinstance(cls, type) and cls in PARAMETRISATIONS.values()):
        names = ", ".join(c.__name__ for c in PARAMETRISATIONS.values())
        raise ValueError(f"mask parametrisation must be one of {names} (masks.kind {', '.join(PARAMETRISATIONS)}), "
                         f"got {cls!r}")
