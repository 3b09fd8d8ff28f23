"""Tests of the AnatCL loss against plain-Python loops written from its documented formula."""

import math

import pytest
import torch

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.training.loss import (
    AnatCLLoss,
    DescriptorScaling,
    kernel_contrastive_loss,
    local_rbf_kernel,
    normalise_descriptors,
    rbf_kernel,
)

# 3 subjects x 2 views x 3-d features; 3 subjects x 2 regions x 3 measures; ages in years.
FEATURES = [
    [[0.9, -0.2, 0.4], [0.7, 0.1, 0.5]],
    [[-0.3, 0.8, 0.2], [-0.1, 0.9, -0.4]],
    [[0.2, 0.3, -0.9], [0.5, -0.6, -0.7]],
]
DESCRIPTORS = [
    [[0.1, -0.5, 1.2], [0.3, 0.0, -0.7]],
    [[0.4, -0.1, 0.9], [-0.2, 0.6, -0.3]],
    [[-1.1, 0.8, 0.2], [1.0, -0.9, 0.5]],
]
AGES = [23.0, 25.5, 61.0]


def as_tensor(values):
    return torch.tensor(values, dtype=torch.float64)


def reference_global_kernel(descriptors, sigma):
    flat = [[x for region in subject for x in region] for subject in descriptors]
    return [[math.exp(-sum((p - q) ** 2 for p, q in zip(di, dj)) / (2 * sigma**2))
             for dj in flat] for di in flat]


def reference_local_kernel(descriptors, sigma):
    return [[sum(math.exp(-sum((p - q) ** 2 for p, q in zip(ri, rj)) / (2 * sigma**2))
                 for ri, rj in zip(di, dj)) / len(di)
             for dj in descriptors] for di in descriptors]


def reference_age_kernel(ages, sigma):
    return [[math.exp(-((yi - yj) ** 2) / (2 * sigma**2)) for yj in ages] for yi in ages]


def reference_loss(features, kernel, temperature):
    """L(K) = (1/n) sum_a l_a, with the loops of the module docstring."""
    rows = [(i, v) for i in range(len(features)) for v in range(len(features[0]))]
    unit = {}
    for i, v in rows:
        norm = math.sqrt(sum(x * x for x in features[i][v]))
        unit[i, v] = [x / norm for x in features[i][v]]
    total = 0.0
    for a in rows:
        sims = {b: sum(p * q for p, q in zip(unit[a], unit[b])) / temperature
                for b in rows if b != a}
        log_denominator = math.log(sum(math.exp(s) for s in sims.values()))
        weighted = sum(kernel[a[0]][b[0]] * (sims[b] - log_denominator) for b in sims)
        total += -weighted / sum(kernel[a[0]][b[0]] for b in sims)
    return total / len(rows)


def reference_ntxent(features, temperature):
    """SimCLR NT-Xent on 2 views: -log softmax of the other view of the same subject."""
    n = len(features)
    unit = [[x / math.sqrt(sum(y * y for y in vec)) for x in vec]
            for views in features for vec in views]
    total = 0.0
    for a in range(2 * n):
        positive = a + 1 if a % 2 == 0 else a - 1
        sims = [sum(p * q for p, q in zip(unit[a], unit[b])) / temperature for b in range(2 * n)]
        denominator = sum(math.exp(s) for b, s in enumerate(sims) if b != a)
        total += -math.log(math.exp(sims[positive]) / denominator)
    return total / (2 * n)


def test_rbf_kernel_follows_official_convention():
    kernel = rbf_kernel(as_tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]), sigma=2.0)
    expected = [[1.0, math.exp(-2 / 8), math.exp(-4 / 8)],
                [math.exp(-2 / 8), 1.0, math.exp(-2 / 8)],
                [math.exp(-4 / 8), math.exp(-2 / 8), 1.0]]
    assert torch.allclose(kernel, as_tensor(expected), atol=1e-12)


def test_kernels_match_loops():
    flat = as_tensor(DESCRIPTORS).flatten(1)
    assert torch.allclose(rbf_kernel(flat, 1.5),
                          as_tensor(reference_global_kernel(DESCRIPTORS, 1.5)), atol=1e-12)
    assert torch.allclose(local_rbf_kernel(as_tensor(DESCRIPTORS), 1.5),
                          as_tensor(reference_local_kernel(DESCRIPTORS, 1.5)), atol=1e-12)


def test_closed_form_two_orthogonal_subjects():
    # Views of a subject coincide, subjects are orthogonal: every anchor has
    # l = log(exp(1/tau) + 2) - (1/tau) / (1 + 2k), k = exp(-||d0 - d1||^2 / (2 sigma^2)).
    features = as_tensor([[[1.0, 0.0], [2.0, 0.0]], [[0.0, 3.0], [0.0, 1.0]]])
    descriptors = as_tensor([[0.0, 0.0], [1.0, 1.0]])
    k = math.exp(-1.0)
    expected = math.log(math.exp(10.0) + 2) - 10.0 / (1 + 2 * k)
    loss = AnatCLLoss(temperature=0.1, sigma=1.0)(features, descriptors)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("descriptor, reference_kernel", [
    ("global", reference_global_kernel),
    ("local", reference_local_kernel),
])
def test_loss_without_age_matches_reference(descriptor, reference_kernel):
    loss = AnatCLLoss(temperature=0.1, sigma=1.5, descriptor=descriptor, alpha=0.7)
    value = loss(as_tensor(FEATURES), as_tensor(DESCRIPTORS))
    expected = 0.7 * reference_loss(FEATURES, reference_kernel(DESCRIPTORS, 1.5), 0.1)
    assert value.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("descriptor, reference_kernel", [
    ("global", reference_global_kernel),
    ("local", reference_local_kernel),
])
def test_loss_with_age_matches_reference(descriptor, reference_kernel):
    loss = AnatCLLoss(temperature=0.2, sigma=1.5, descriptor=descriptor, alpha=0.7, lambd=0.4,
                      age_sigma=5.0)
    value = loss(as_tensor(FEATURES), as_tensor(DESCRIPTORS), ages=as_tensor(AGES))
    expected = (0.7 * reference_loss(FEATURES, reference_kernel(DESCRIPTORS, 1.5), 0.2)
                + 0.4 * reference_loss(FEATURES, reference_age_kernel(AGES, 5.0), 0.2))
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_age_sigma_defaults_to_sigma():
    value = AnatCLLoss(sigma=3.0, alpha=0.0)(as_tensor(FEATURES), as_tensor(DESCRIPTORS),
                                             ages=as_tensor(AGES))
    expected = reference_loss(FEATURES, reference_age_kernel(AGES, 3.0), 0.1)
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_global_flattens_region_descriptors():
    loss = AnatCLLoss(sigma=1.5)
    by_region = loss(as_tensor(FEATURES), as_tensor(DESCRIPTORS))
    flat = loss(as_tensor(FEATURES), as_tensor(DESCRIPTORS).flatten(1))
    assert by_region.item() == flat.item()


def test_identical_descriptors_give_uniform_targets():
    # Kernel all ones: every other row is an equal positive, l_a = -mean_b log p_ab,
    # which is >= log(n - 1), with equality when all embeddings coincide.
    ones = [[1.0] * 3 for _ in range(3)]
    same = as_tensor([[[0.5, -1.0, 2.0]]] * 3)
    loss = AnatCLLoss(sigma=0.5)
    value = loss(as_tensor(FEATURES), same)
    assert value.item() == pytest.approx(reference_loss(FEATURES, ones, 0.1), abs=1e-6)
    assert value.item() > math.log(5)
    collapsed = as_tensor([[[1.0, 2.0, 3.0]] * 2] * 3)
    assert loss(collapsed, same).item() == pytest.approx(math.log(5), abs=1e-12)


def test_tiny_sigma_gives_simclr_ntxent():
    # Kernel -> identity: the only positive is the other view of the same subject.
    for descriptor in ("global", "local"):
        value = AnatCLLoss(sigma=1e-3, descriptor=descriptor)(as_tensor(FEATURES),
                                                              as_tensor(DESCRIPTORS))
        assert value.item() == pytest.approx(reference_ntxent(FEATURES, 0.1), abs=1e-6)
    identity = kernel_contrastive_loss(as_tensor(FEATURES), torch.eye(3), temperature=0.1)
    assert identity.item() == pytest.approx(reference_ntxent(FEATURES, 0.1), abs=1e-6)


def test_huge_sigma_gives_uniform_targets():
    ones = [[1.0] * 3 for _ in range(3)]
    value = AnatCLLoss(sigma=1e6)(as_tensor(FEATURES), as_tensor(DESCRIPTORS))
    assert value.item() == pytest.approx(reference_loss(FEATURES, ones, 0.1), abs=1e-6)


def test_one_subject_two_views_is_zero_without_gradient():
    features = as_tensor([FEATURES[0]]).requires_grad_()
    value = AnatCLLoss()(features, as_tensor([DESCRIPTORS[0]]), ages=as_tensor([30.0]))
    value.backward()
    assert value.item() == 0.0
    assert torch.count_nonzero(features.grad) == 0


def test_one_subject_three_views_contrasts_its_views():
    views = [[[0.9, -0.2, 0.4], [0.7, 0.1, 0.5], [-0.3, 0.8, 0.2]]]
    value = AnatCLLoss()(as_tensor(views), as_tensor([DESCRIPTORS[0]]))
    assert value.item() == pytest.approx(reference_loss(views, [[1.0]], 0.1), abs=1e-6)


def test_one_view_uses_other_subjects_only():
    single = [[subject[0]] for subject in FEATURES]
    value = AnatCLLoss(sigma=1.5)(as_tensor(single), as_tensor(DESCRIPTORS))
    expected = reference_loss(single, reference_global_kernel(DESCRIPTORS, 1.5), 0.1)
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_one_view_without_positive_raises():
    single = as_tensor([[subject[0]] for subject in FEATURES])
    with pytest.raises(AnatCLError, match="no positive.*larger sigma"):
        AnatCLLoss(sigma=1e-3)(single, as_tensor(DESCRIPTORS))


def test_one_subject_one_view_raises():
    with pytest.raises(AnatCLError, match=r"1 subject\(s\) in 1 view\(s\).*at least 2 rows"):
        AnatCLLoss()(as_tensor([[FEATURES[0][0]]]), as_tensor([DESCRIPTORS[0]]))


@pytest.mark.parametrize("name", ["temperature", "sigma", "age_sigma"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_widths_raise(name, value):
    with pytest.raises(AnatCLError, match=f"{name} must be a finite number > 0"):
        AnatCLLoss(**{name: value})


@pytest.mark.parametrize("name", ["alpha", "lambd"])
def test_negative_weights_raise(name):
    with pytest.raises(AnatCLError, match=f"{name} must be a finite weight >= 0, got -1.0"):
        AnatCLLoss(**{name: -1.0})


def test_unknown_descriptor_raises():
    with pytest.raises(AnatCLError, match=r"descriptor must be one of \('global', 'local'\)"):
        AnatCLLoss(descriptor="regional")


def test_kernel_functions_check_sigma_and_temperature():
    with pytest.raises(AnatCLError, match="sigma must be a finite number > 0, got 0"):
        rbf_kernel(as_tensor([[1.0]]), 0)
    with pytest.raises(AnatCLError, match="sigma must be a finite number > 0, got -2.0"):
        local_rbf_kernel(as_tensor(DESCRIPTORS), -2.0)
    with pytest.raises(AnatCLError, match="temperature must be a finite number > 0, got 0.0"):
        kernel_contrastive_loss(as_tensor(FEATURES), torch.eye(3), temperature=0.0)


def test_shape_mismatches_raise():
    loss = AnatCLLoss()
    features, descriptors = as_tensor(FEATURES), as_tensor(DESCRIPTORS)
    with pytest.raises(AnatCLError, match=r"features must have shape \(subjects, views, dim\), "
                                          r"got \(6, 3\)"):
        loss(features.flatten(0, 1), descriptors)
    with pytest.raises(AnatCLError, match=r"one row per subject \(3\), got shape \(2, 2, 3\)"):
        loss(features, descriptors[:2])
    with pytest.raises(AnatCLError, match=r"global descriptors must have shape.*got \(3,\)"):
        loss(features, as_tensor([1.0, 2.0, 3.0]))
    with pytest.raises(AnatCLError, match=r"local descriptors must have shape \(subjects, "
                                          r"regions, measures\), got \(3, 6\)"):
        AnatCLLoss(descriptor="local")(features, descriptors.flatten(1))
    with pytest.raises(AnatCLError, match=r"ages must have shape \(3,\), one per subject, "
                                          r"got \(3, 1\)"):
        loss(features, descriptors, ages=as_tensor([[20.0], [30.0], [40.0]]))
    with pytest.raises(AnatCLError, match=r"subject_kernel must be \(3, 3\) for 3 subjects"):
        kernel_contrastive_loss(features, torch.eye(2))


def test_nan_descriptors_and_ages_raise():
    loss = AnatCLLoss()
    descriptors = as_tensor(DESCRIPTORS)
    descriptors[1, 0, 2] = float("nan")
    with pytest.raises(AnatCLError, match="descriptors contain NaN or infinite values"):
        loss(as_tensor(FEATURES), descriptors)
    with pytest.raises(AnatCLError, match="ages contain NaN or infinite values"):
        loss(as_tensor(FEATURES), as_tensor(DESCRIPTORS), ages=as_tensor([20.0, math.nan, 1.0]))


def test_low_precision_features_are_computed_in_float32():
    features = as_tensor(FEATURES).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = AnatCLLoss(sigma=1.5)(features, as_tensor(DESCRIPTORS))
    rounded = features.double().tolist()
    expected = reference_loss(rounded, reference_global_kernel(DESCRIPTORS, 1.5), 0.1)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("descriptor", ["global", "local"])
def test_gradcheck_with_respect_to_features(descriptor):
    loss = AnatCLLoss(temperature=0.5, sigma=1.5, descriptor=descriptor, lambd=0.5, age_sigma=5.0)
    features = as_tensor(FEATURES).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda f: loss(f, as_tensor(DESCRIPTORS), ages=as_tensor(AGES)), (features,))


@pytest.mark.parametrize("descriptor", ["global", "local"])
def test_anatomically_ordered_embeddings_beat_shuffled(descriptor):
    # Subject i has anatomy i / 2 and sits at angle i * pi / 8; shuffling which subject
    # owns which pair of views keeps the views together but breaks the anatomy order.
    n = 8
    angles = torch.arange(n, dtype=torch.float64) * math.pi / 8
    views = torch.stack([angles - 0.05, angles + 0.05], dim=1)
    features = torch.stack([views.cos(), views.sin()], dim=-1)
    anatomy = (torch.arange(n, dtype=torch.float64) / 2)[:, None, None].repeat(1, 4, 1)
    shuffled = features[torch.tensor([3, 7, 0, 5, 1, 6, 2, 4])]
    loss = AnatCLLoss(sigma=1.0, descriptor=descriptor)
    assert loss(features, anatomy).item() + 1.0 < loss(shuffled, anatomy).item()


def test_normalise_descriptors_zscores_columns():
    train = [[[1.0, 10.0], [4.0, 7.0]], [[3.0, 10.0], [0.0, 7.0]], [[5.0, 10.0], [2.0, 7.0]]]
    normalised, scaling = normalise_descriptors(train)
    sd = math.sqrt(8 / 3)
    assert torch.equal(scaling.mean, as_tensor([[3.0, 10.0], [2.0, 7.0]]))
    assert torch.allclose(scaling.std, as_tensor([[sd, 1.0], [sd, 1.0]]), atol=1e-15)
    assert torch.allclose(normalised[:, 0, 0], as_tensor([-2 / sd, 0.0, 2 / sd]), atol=1e-15)
    assert torch.equal(normalised[:, :, 1], torch.zeros(3, 2, dtype=torch.float64))


def test_normalise_descriptors_reapplies_stored_scaling():
    _, scaling = normalise_descriptors([[1.0, 0.0], [3.0, 4.0]])
    stored = {name: value.clone() for name, value in scaling._asdict().items()}
    normalised, same = normalise_descriptors([[5.0, 6.0]], DescriptorScaling(**stored))
    assert torch.equal(normalised, as_tensor([[3.0, 2.0]]))
    assert torch.equal(same.mean, scaling.mean) and torch.equal(same.std, scaling.std)


def test_normalise_descriptors_rejects_bad_input():
    _, scaling = normalise_descriptors([[1.0, 0.0], [3.0, 4.0]])
    with pytest.raises(AnatCLError, match=r"fitted on descriptors of shape \(2,\) per subject, "
                                          r"got \(3,\)"):
        normalise_descriptors([[1.0, 2.0, 3.0]], scaling)
    with pytest.raises(AnatCLError, match="descriptors contain NaN"):
        normalise_descriptors([[1.0, math.nan], [3.0, 4.0]])
    with pytest.raises(AnatCLError, match="needs at least 2 subjects"):
        normalise_descriptors([[1.0, 2.0]])
    with pytest.raises(AnatCLError, match=r"got \(3,\)"):
        normalise_descriptors([1.0, 2.0, 3.0])
