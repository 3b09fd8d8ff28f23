"""The AnatCL pretraining loss: a y-Aware contrastive loss weighted by anatomy and age.

AnatCL (Barbano et al., "Anatomical foundation models for brain MRIs", Pattern Recognition
Letters 199:178-184, 2026; arXiv 2408.07079) trains the encoder with a weakly supervised
contrastive loss of the y-Aware family (Dufumier et al., "Contrastive learning with
continuous proxy meta-data for 3D MRI classification", MICCAI 2021; Barbano et al.,
"Contrastive learning for regression in multi-site brain age prediction", ISBI 2023):
every other sample is a positive, weighted by a kernel over continuous descriptors.

The formula (plain text). A batch holds N subjects seen in V views, n = N * V rows.
Row a is view v(a) of subject i(a) with feature f_a::

    z_a  = f_a / ||f_a||                                   (L2 normalised here)
    s_ab = <z_a, z_b> / tau
    w_ab = K[i(a), i(b)]                                   (a != b; K is N x N)
    l_a(K) = - sum_{b != a} w_ab * log( exp(s_ab) / sum_{c != a} exp(s_ac) )
                 / sum_{b != a} w_ab
    L(K) = (1 / n) * sum_a l_a(K)

    AnatCL = alpha * L(K_anat) + lambd * L(K_age)          (age term only if ages are given)

    K_anat global: K[i, j] = exp(-||d_i - d_j||^2 / (2 sigma^2)), d_i the whole descriptor
                   vector of subject i (all regions and measures, flattened)
    K_anat local:  K[i, j] = (1 / R) * sum_r exp(-||d_ir - d_jr||^2 / (2 sigma^2)),
                   d_ir the M measures (e.g. CT, GMV, SA) of region r
    K_age:         K[i, j] = exp(-(y_i - y_j)^2 / (2 age_sigma^2)), y the ages

The other views of a subject have weight K[i, i] = 1, so they are always positives. The
kernel is the ``rbf`` of the official code (ISBI 2023 ``main_infonce.py``:
``exp(-(x - x.T)**2 / (2 * sigma**2))``, no 1/(sqrt(2 pi) sigma) factor, which is its
``gaussian`` kernel; y-Aware uses scikit-learn's ``rbf_kernel`` with
gamma = 1 / (2 sigma^2): the same). l_a is their loss: the kernel-weighted mean of the
log-probabilities over positives, the softmax denominator running over every other row.

Where this may differ from the AnatCL training code, which is not public:

- the official ``KernelizedSupCon`` multiplies the loss by tau / base_tau (base_tau = 0.07
  by default); that constant factor is left out here;
- how AnatCL combines anatomy and age, and which term ``alpha`` and ``lambd`` weight, are
  not published in code: here two kernel-weighted terms over the same similarities are
  summed (the released runs use alpha = lambd = 1, where the assignment does not matter);
- a third-party reading of the paper uses cosine similarities of the measures (per region
  for local, per measure over all regions for global); the run names say ``kernel_rbf``,
  which this module follows. For F independent z-scored columns E||d_i - d_j||^2 = 2 F, so
  with the 204 Desikan global descriptors (68 regions x 3) and sigma = 2 the global kernel
  is nearly the identity (SimCLR): choose sigma for the data;
- ``normTrue`` is read as a z-score per descriptor column over the training set.

>>> import torch
>>> _ = torch.manual_seed(0)
>>> loss = AnatCLLoss(descriptor="local")
>>> features = torch.randn(4, 2, 8)           # 4 subjects, 2 views, 8-d projections
>>> descriptors = torch.randn(4, 68, 3)       # 68 Desikan regions x (CT, GMV, SA)
>>> value = loss(features, descriptors, ages=torch.tensor([20.0, 31.0, 45.0, 60.0]))
>>> value.shape, bool(value > 0)
(torch.Size([]), True)
"""

import math
import numbers
from typing import NamedTuple

import torch
import torch.nn.functional as F

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.options import DESCRIPTORS


def _check_positive(name, value):
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise AnatCLError(f"{name} must be a finite number > 0, got {value!r}; the AnatCL "
                          f"recipe uses temperature 0.1 and sigma 2.0")


def _check_weight(name, value):
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value >= 0):
        raise AnatCLError(f"{name} must be a finite weight >= 0, got {value!r}")


def _check_finite(values, what):
    if not torch.isfinite(values).all():
        raise AnatCLError(f"{what} contain NaN or infinite values; impute them or drop those "
                          f"subjects before computing the loss")


def _float_tensor(values):
    values = torch.as_tensor(values)
    return values if values.is_floating_point() else values.to(torch.float64)


def _gaussian(squared_distances, sigma):
    return torch.exp(-squared_distances / (2 * sigma**2))


def rbf_kernel(descriptors, sigma):
    """Return the (N, N) kernel exp(-||d_i - d_j||^2 / (2 sigma^2)) of (N, F) descriptors.

    The convention of the official y-Aware and ISBI 2023 code (scikit-learn's
    ``rbf_kernel`` with gamma = 1 / (2 sigma^2)); the diagonal is 1.

    >>> rbf_kernel(torch.tensor([[0.0], [2.0]]), sigma=2.0)
    tensor([[1.0000, 0.6065],
            [0.6065, 1.0000]])
    """
    _check_positive("sigma", sigma)
    descriptors = _float_tensor(descriptors)
    if descriptors.ndim != 2 or descriptors.shape[1] == 0:
        raise AnatCLError(f"descriptors must have shape (subjects, features), got "
                          f"{tuple(descriptors.shape)}")
    _check_finite(descriptors, "descriptors")
    differences = descriptors[:, None, :] - descriptors[None, :, :]
    return _gaussian(differences.pow(2).sum(-1), sigma)


def local_rbf_kernel(descriptors, sigma):
    """Return the (N, N) mean over regions of per-region RBF kernels of (N, R, M) descriptors.

    K[i, j] = (1 / R) * sum_r exp(-||d_ir - d_jr||^2 / (2 sigma^2)), with d_ir the M
    measures of region r of subject i.

    >>> d = torch.tensor([[[0.0], [0.0]], [[0.0], [2.0]]])    # 2 subjects, 2 regions, 1 measure
    >>> local_rbf_kernel(d, sigma=2.0)[0, 1]                    # (1 + exp(-0.5)) / 2
    tensor(0.8033)
    """
    _check_positive("sigma", sigma)
    descriptors = _float_tensor(descriptors)
    if descriptors.ndim != 3 or 0 in descriptors.shape[1:]:
        raise AnatCLError(f"local descriptors must have shape (subjects, regions, measures), "
                          f"got {tuple(descriptors.shape)}")
    _check_finite(descriptors, "descriptors")
    differences = descriptors[:, None] - descriptors[None, :]
    return _gaussian(differences.pow(2).sum(-1), sigma).mean(-1)


def _check_features(features):
    if features.ndim != 3:
        raise AnatCLError(f"features must have shape (subjects, views, dim), got "
                          f"{tuple(features.shape)}")
    n_subjects, n_views, _ = features.shape
    if n_subjects * n_views < 2:
        raise AnatCLError(f"features hold {n_subjects} subject(s) in {n_views} view(s): a "
                          f"contrastive loss needs at least 2 rows; use 2 views or more subjects")


def _log_probabilities(features, temperature):
    """Return log softmax_b(s_ab) over b != a, shape (n, n), and the off-diagonal mask.

    Rows are ordered view by view: row v * N + i is view v of subject i. Computed in at
    least float32, also under autocast (mixed-precision training).
    """
    with torch.autocast(features.device.type, enabled=False):
        features = features.to(torch.promote_types(features.dtype, torch.float32))
        embeddings = F.normalize(features.transpose(0, 1).reshape(-1, features.shape[-1]), dim=1)
        not_self = ~torch.eye(len(embeddings), dtype=torch.bool, device=features.device)
        logits = (embeddings @ embeddings.T / temperature).masked_fill(~not_self, float("-inf"))
        return torch.log_softmax(logits, dim=1).masked_fill(~not_self, 0.0), not_self


def _weighted_loss(log_prob, not_self, subject_kernel):
    """Return L(K): the kernel-weighted mean negative log-probability over positives."""
    n_views = len(log_prob) // len(subject_kernel)
    weights = subject_kernel.to(log_prob).repeat(n_views, n_views) * not_self
    total_weight = weights.sum(1)
    if not (total_weight > 0).all():
        raise AnatCLError("a sample has no positive: the kernel gives weight 0 to every other "
                          "sample; use 2 views or more, or a larger sigma")
    return -((weights * log_prob).sum(1) / total_weight).mean()


def kernel_contrastive_loss(features, subject_kernel, temperature=0.1):
    """Return the y-Aware loss L(K) of (N, V, D) features for an (N, N) subject kernel.

    With K the identity and 2 views this is SimCLR's NT-Xent loss.

    >>> features = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    >>> kernel_contrastive_loss(features, torch.eye(2), temperature=1.0)  # log(e + 2) - 1
    tensor(0.5514)
    """
    _check_positive("temperature", temperature)
    _check_features(features)
    n_subjects = features.shape[0]
    subject_kernel = torch.as_tensor(subject_kernel)
    if tuple(subject_kernel.shape) != (n_subjects, n_subjects):
        raise AnatCLError(f"subject_kernel must be ({n_subjects}, {n_subjects}) for "
                          f"{n_subjects} subjects, got {tuple(subject_kernel.shape)}")
    return _weighted_loss(*_log_probabilities(features, temperature), subject_kernel)


class AnatCLLoss(torch.nn.Module):
    """AnatCL loss: alpha * L(K_anat) + lambd * L(K_age), see the module docstring.

    Parameters: ``temperature`` (tau), ``sigma`` (anatomical kernel width, in units of the
    normalised descriptors), ``descriptor`` ("global": one kernel over the whole descriptor
    vector, (N, F) or (N, R, M) flattened; "local": one kernel per region over its (N, R, M)
    measures, averaged), ``alpha`` (weight of the anatomical term), ``lambd`` (weight of the
    age term), ``age_sigma`` (age kernel width in years; defaults to ``sigma``).

    ``forward(features, descriptors, ages=None)``: features (N, V, D), L2-normalised here;
    descriptors as above, normalised by the caller (:func:`normalise_descriptors`); ages (N,)
    or None (no age term). One subject in V >= 2 views: its other views are the only
    samples, all positives; with V = 2 the loss is 0 (a softmax over one candidate) and has no
    gradient. One subject in one view has no pair and raises :class:`AnatCLError`.

    >>> loss = AnatCLLoss(temperature=0.1, sigma=2.0, descriptor="global")
    >>> loss
    AnatCLLoss(descriptor=global, temperature=0.1, sigma=2.0, age_sigma=2.0, alpha=1.0, lambd=1.0)
    >>> same = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])   # one subject, two identical views
    >>> loss(same, torch.zeros(1, 5)).item() == 0
    True
    """

    def __init__(self, temperature=0.1, sigma=2.0, descriptor="global", alpha=1.0, lambd=1.0,
                 age_sigma=None):
        super().__init__()
        if descriptor not in DESCRIPTORS:
            raise AnatCLError(f"descriptor must be one of {DESCRIPTORS}, got {descriptor!r}")
        age_sigma = sigma if age_sigma is None else age_sigma
        for name, value in [("temperature", temperature), ("sigma", sigma),
                            ("age_sigma", age_sigma)]:
            _check_positive(name, value)
        _check_weight("alpha", alpha)
        _check_weight("lambd", lambd)
        self.temperature, self.sigma, self.age_sigma = temperature, sigma, age_sigma
        self.descriptor, self.alpha, self.lambd = descriptor, alpha, lambd

    def extra_repr(self):
        return (f"descriptor={self.descriptor}, temperature={self.temperature}, "
                f"sigma={self.sigma}, age_sigma={self.age_sigma}, alpha={self.alpha}, "
                f"lambd={self.lambd}")

    def _anatomical_kernel(self, descriptors):
        """Return the (N, N) anatomical kernel of the descriptors for this variant."""
        if self.descriptor == "local":
            return local_rbf_kernel(descriptors, self.sigma)
        if descriptors.ndim < 2:
            raise AnatCLError(f"global descriptors must have shape (subjects, features) or "
                              f"(subjects, regions, measures), got {tuple(descriptors.shape)}")
        return rbf_kernel(descriptors.flatten(1), self.sigma)

    def forward(self, features, descriptors, ages=None):
        _check_features(features)
        n_subjects = features.shape[0]
        dtype = torch.promote_types(features.dtype, torch.float32)
        descriptors = torch.as_tensor(descriptors, dtype=dtype, device=features.device)
        if descriptors.ndim == 0 or len(descriptors) != n_subjects:
            raise AnatCLError(f"descriptors must have one row per subject ({n_subjects}), got "
                              f"shape {tuple(descriptors.shape)}")
        log_prob, not_self = _log_probabilities(features, self.temperature)
        loss = self.alpha * _weighted_loss(log_prob, not_self, self._anatomical_kernel(descriptors))
        if ages is None:
            return loss
        ages = torch.as_tensor(ages, dtype=dtype, device=features.device)
        if tuple(ages.shape) != (n_subjects,):
            raise AnatCLError(f"ages must have shape ({n_subjects},), one per subject, got "
                              f"{tuple(ages.shape)}")
        _check_finite(ages, "ages")
        age_kernel = rbf_kernel(ages[:, None], self.age_sigma)
        return loss + self.lambd * _weighted_loss(log_prob, not_self, age_kernel)


class DescriptorScaling(NamedTuple):
    """Per-column mean and standard deviation of the training descriptors (``normTrue``).

    Store ``scaling._asdict()`` (two tensors) and rebuild with ``DescriptorScaling(**stored)``.
    """

    mean: torch.Tensor
    std: torch.Tensor


def normalise_descriptors(descriptors, scaling=None):
    """Z-score each descriptor column; return (normalised, scaling), in float64.

    Without ``scaling`` the mean and (population) standard deviation of every column (every
    region and measure) are fitted on ``descriptors``, the training set; pass the returned
    scaling to normalise other subjects the same way. A constant column keeps std 1.

    >>> train = torch.tensor([[1.0, 10.0], [3.0, 10.0]])
    >>> normalised, scaling = normalise_descriptors(train)
    >>> normalised
    tensor([[-1.,  0.],
            [ 1.,  0.]], dtype=torch.float64)
    >>> normalise_descriptors(torch.tensor([[5.0, 12.0]]), scaling)[0]
    tensor([[3., 2.]], dtype=torch.float64)
    """
    values = torch.as_tensor(descriptors, dtype=torch.float64)
    if values.ndim < 2 or values[0].numel() == 0:
        raise AnatCLError(f"descriptors must have shape (subjects, features) or (subjects, "
                          f"regions, measures), got {tuple(values.shape)}")
    _check_finite(values, "descriptors")
    if scaling is None:
        scaling = _fit_scaling(values)
    elif tuple(scaling.mean.shape) != tuple(values.shape[1:]):
        raise AnatCLError(f"the scaling was fitted on descriptors of shape "
                          f"{tuple(scaling.mean.shape)} per subject, got "
                          f"{tuple(values.shape[1:])}; use the same atlas and measures as in "
                          f"training")
    return (values - scaling.mean) / scaling.std, scaling


def _fit_scaling(values):
    if len(values) < 2:
        raise AnatCLError("fitting the descriptor normalisation needs at least 2 subjects; "
                          "pass the scaling fitted on the training set instead")
    std = values.std(dim=0, correction=0)
    constant = (values == values[0]).all(dim=0)
    return DescriptorScaling(values.mean(dim=0), torch.where(constant, torch.ones_like(std), std))
