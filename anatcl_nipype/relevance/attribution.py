"""Voxel relevance of a grey-matter map for a probe's score, with captum.

Two methods, both from captum:

``integrated_gradients`` (default)
    Integrated gradients (Sundararajan et al. 2017) from a ``baseline`` map to the
    input along a straight line, at ``steps`` points. Cost per map: ``steps`` forward
    and ``steps`` backward passes of the network plus one forward pass for the map's
    score (the baseline's score is computed once per run). Relevance sums to
    ``score(map) - score(baseline)``; what is left over is reported as ``delta``.
``occlusion``
    Replace each cube of ``window`` voxels (stride ``window``) by the baseline and
    record how much the score changes. Forward passes only: one per window position
    plus one, e.g. 1,332 for window 12 on the 121x128x121 input.

The baseline matters. From the all-zero map, integrated gradients explain the score
of the whole brain against no brain: every grey-matter voxel gets relevance, and in
the tests (random weights, atrophy planted in one region) the planted region gets
less than the rest of the brain. From the group's mean map they explain how *this*
map differs from the group in ways the probe uses, and the planted region gets over
3x the rest. The group mean map is therefore the default baseline of
:func:`~anatcl_nipype.relevance.maps.probe_relevance_maps`.

A group map averages each participant's relevance times the sign of its score
difference, ``sign(score(map) - score(baseline))``: that orients every map towards
what moves *that* participant away from the baseline, so the region that drives the
probe adds up over participants on both sides of the baseline, while noise of random
sign averages out (with a plain mean, patients and controls cancel).

Memory and time on the full 121x128x121 input, CPU (benchmarks/relevance.py, 2-core
AMD EPYC Zen 3, AVX2, shared): ``internal_batch_size`` volumes go through the network
at once; peak resident memory is 1.1 GiB at 1 (the default) and 2.0 GiB at 4. One map
with 20 steps took about 210 s (about 10 s per forward and backward pass); batching
does not make the CPU faster.

>>> import numpy as np
>>> from anatcl_nipype.encoder.model import AnatCLNetwork
>>> from anatcl_nipype.relevance.probe_score import ProbeScore
>>> score = ProbeScore(AnatCLNetwork().eval(), np.ones((1, 512)) / 512, np.zeros(1))
>>> volume = np.random.default_rng(0).random((24, 24, 24), dtype=np.float32)
>>> result = attribute_volume(score, volume, baseline=np.zeros_like(volume), steps=4)
>>> result.relevance.shape, result.relevance.dtype.name
((24, 24, 24), 'float32')
"""

from typing import NamedTuple

import numpy as np
import torch

from anatcl_nipype.errors import AnatCLError

METHODS = ("integrated_gradients", "occlusion")


class Relevance(NamedTuple):
    """One map's relevance (float32, the input's shape), its score and the baseline's.

    ``delta`` is ``relevance.sum() - (score - baseline_score)``: 0 for exact integrated
    gradients, a measure of the integration error with few steps.
    """

    relevance: np.ndarray
    score: float
    baseline_score: float

    @property
    def delta(self):
        return float(self.relevance.sum(dtype=np.float64)) - (self.score - self.baseline_score)


def forward_backward_passes(method, steps=None, window=None, shape=None):
    """How many forward and backward passes of the network one map costs.

    >>> forward_backward_passes("integrated_gradients", steps=20)
    (21, 20)
    >>> forward_backward_passes("occlusion", window=12, shape=(121, 128, 121))
    (1332, 0)
    """
    check_method(method)
    if method == "integrated_gradients":
        return steps + 1, steps
    positions = np.prod([-(-(size - window) // window) + 1 for size in shape])
    return int(positions) + 1, 0


def check_method(method):
    """Raise :class:`AnatCLError` unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise AnatCLError(f"unknown relevance method {method!r}; choose one of "
                          f"{', '.join(METHODS)}")


def decision_score(score, volume):
    """The probe's score of one 3D map (one forward pass)."""
    with torch.no_grad():
        return float(score(_as_input(volume, score)).item())


def attribute_volume(score, volume, baseline, method="integrated_gradients", steps=20,
                     internal_batch_size=1, window=12, baseline_score=None):
    """Relevance of every voxel of ``volume`` (3D array) for ``score`` (a (B, 1) module).

    ``baseline`` is a 3D array of the same shape (zeros, or a mean map); pass its
    ``baseline_score`` when known to save a forward pass.
    """
    check_method(method)
    if baseline.shape != volume.shape:
        raise AnatCLError(f"baseline of shape {baseline.shape} for a map of shape "
                          f"{volume.shape}; they must match")
    inputs, reference = _as_input(volume, score), _as_input(baseline, score)
    if method == "integrated_gradients":
        from captum.attr import IntegratedGradients

        attribution = IntegratedGradients(score).attribute(
            inputs, baselines=reference, target=0, n_steps=int(steps),
            internal_batch_size=int(internal_batch_size))
    else:
        from captum.attr import Occlusion

        window_shape = (1,) + (int(window),) * 3
        with torch.no_grad():
            attribution = Occlusion(score).attribute(
                inputs, baselines=reference, target=0, sliding_window_shapes=window_shape,
                strides=window_shape, perturbations_per_eval=int(internal_batch_size))
    if baseline_score is None:
        baseline_score = decision_score(score, baseline)
    return Relevance(attribution[0, 0].detach().float().cpu().numpy(),
                     decision_score(score, volume), float(baseline_score))


class GroupRelevance:
    """Running mean of ``relevance * sign(score - baseline_score)`` over participants.

    Holds one map whatever the number of participants.

    >>> group = GroupRelevance()
    >>> group.add(Relevance(np.array([1.0, -0.5]), score=2.0, baseline_score=0.0))
    >>> group.add(Relevance(np.array([-3.0, -0.5]), score=-1.0, baseline_score=0.0))
    >>> group.mean().tolist(), group.count
    ([2.0, 0.0], 2)
    """

    def __init__(self):
        self.total, self.count = None, 0

    def add(self, result):
        sign = np.sign(result.score - result.baseline_score)
        oriented = sign * result.relevance.astype(np.float64)
        self.total = oriented if self.total is None else self.total + oriented
        self.count += 1

    def mean(self):
        if not self.count:
            raise AnatCLError("no participant's relevance to average")
        return (self.total / self.count).astype(np.float32)


def _as_input(array, score):
    device = next(score.parameters()).device
    return torch.as_tensor(np.ascontiguousarray(array, dtype=np.float32))[None, None].to(device)
