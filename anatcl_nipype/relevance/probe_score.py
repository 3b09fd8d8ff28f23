"""A saved linear probe composed on top of the frozen AnatCL encoder, as one torch module.

A probe is a scikit-learn pipeline (imputer, scaler, linear model) on the 512-d embedding.
On embeddings the imputer does nothing (they are never missing), and scaler plus linear
model are one affine map, ``score = W @ embedding + b`` with ``W = coef / scale`` and
``b = intercept - W @ mean``. :class:`ProbeScore` runs ``encoder -> Linear(W, b)``, so
attribution methods can go from the probe's decision score (class logit or regression
output) back to the input voxels.

>>> import numpy as np
>>> from sklearn.linear_model import Ridge
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> X = np.random.default_rng(0).normal(size=(20, 3)); y = X @ [1.0, 2.0, 3.0]
>>> probe = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X, y)
>>> weight, bias = probe_affine_map(probe)
>>> bool(np.allclose(X @ weight.T + bias, probe.predict(X)[:, None]))
True
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler
from torch import nn

from anatcl_nipype.errors import PredictionError
from anatcl_nipype.options import PROBE_TASKS
from anatcl_nipype.prediction.brain_age import BrainAgeRegressor

#: Embedding column prefixes: backbone (512-d) and projection head (128-d).
BACKBONE_PREFIX, HEAD_PREFIX = "emb_", "proj_"


class ProbeScore(nn.Module):
    """``network`` (frozen AnatCL) followed by the probe's affine map; outputs (B, K) scores.

    >>> from anatcl_nipype.encoder.model import AnatCLNetwork
    >>> score = ProbeScore(AnatCLNetwork().eval(), np.ones((1, 512)), np.zeros(1))
    >>> score(torch.zeros(2, 1, 16, 16, 16)).shape
    torch.Size([2, 1])
    """

    def __init__(self, network, weight, bias, use_head=False):
        super().__init__()
        self.network = network
        self.use_head = use_head
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            self.linear.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        self.linear.requires_grad_(False)

    def forward(self, volumes):
        return self.linear(self.network(volumes, use_head=self.use_head))


def probe_affine_map(model):
    """``(W, b)`` with ``W @ x + b`` equal to the probe's decision function on embeddings ``x``.

    ``W`` has one row per score: one for regression, brain age (the raw predicted age:
    the bias correction only adds a term of the true age) and binary classification
    (the logit of the second class), one per class otherwise. Steps other than a
    median/mean imputer, a StandardScaler and a final linear model are refused.
    """
    if isinstance(model, BrainAgeRegressor):
        model = model.probe_
    steps = [step for _, step in model.steps] if hasattr(model, "steps") else [model]
    *transforms, linear = steps
    if not (hasattr(linear, "coef_") and hasattr(linear, "intercept_")):
        raise PredictionError(f"the probe ends in a {type(linear).__name__}, not a fitted "
                              "linear model; relevance maps need a linear probe")
    weight = np.atleast_2d(np.asarray(linear.coef_, dtype=np.float64))
    bias = np.atleast_1d(np.asarray(linear.intercept_, dtype=np.float64))
    for step in reversed(transforms):
        weight, bias = _fold_transform(step, weight, bias)
    return weight, bias


def _fold_transform(step, weight, bias):
    """Fold one preprocessing step into the affine map that follows it."""
    if isinstance(step, SimpleImputer):
        return weight, bias  # embeddings have no missing values: identity
    if isinstance(step, StandardScaler):
        if step.scale_ is not None:
            weight = weight / step.scale_
        if step.mean_ is not None:
            bias = bias - weight @ step.mean_
        return weight, bias
    raise PredictionError(f"the probe has a {type(step).__name__} step, which relevance maps "
                          "do not handle (only an imputer, StandardScaler and a linear "
                          "model); refit the probe without it to map its relevance")


def select_score(weight, bias, card, target_class=None):
    """Keep the one row of ``(W, b)`` to explain; return ``(w, b, description)``.

    Binary classification has one logit, that of the second class; asking for the first
    class negates it. Multi-class probes need ``target_class``.

    >>> w, b, what = select_score(np.ones((1, 2)), np.zeros(1),
    ...                           {"task": "classification", "classes": ["CN", "AD"],
    ...                            "target": "dx"}, target_class="CN")
    >>> w.tolist(), what
    ([[-1.0, -1.0]], "logit of class 'CN' (vs the others) of dx")
    """
    if not PROBE_TASKS[card["task"]].categorical:
        if target_class is not None:
            raise PredictionError(f"target_class={target_class!r} given for a {card['task']} "
                                  "probe; it applies to classification only")
        return weight[:1], bias[:1], f"predicted {card['target']}"
    classes = [str(name) for name in card["classes"]]
    if target_class is None:
        if len(classes) != 2:
            raise PredictionError(f"the probe has {len(classes)} classes ({classes}); say "
                                  "which class's logit to explain with target_class")
        target_class = classes[1]
    if str(target_class) not in classes:
        raise PredictionError(f"target_class {target_class!r} is not one of the probe's "
                              f"classes {classes}")
    index = classes.index(str(target_class))
    what = f"logit of class {classes[index]!r} (vs the others) of {card['target']}"
    if len(classes) == 2:
        sign = 1.0 if index == 1 else -1.0
        return sign * weight[:1], sign * bias[:1], what
    return weight[index:index + 1], bias[index:index + 1], what


def embedding_kind(columns):
    """``False`` for backbone columns ``emb_000..emb_511``, ``True`` for head ``proj_*``.

    >>> embedding_kind([f"emb_{i:03d}" for i in range(512)])
    False
    """
    for prefix, size, use_head in ((BACKBONE_PREFIX, 512, False), (HEAD_PREFIX, 128, True)):
        if list(columns) == [f"{prefix}{i:03d}" for i in range(size)]:
            return use_head
    raise PredictionError(
        f"the probe was trained on {len(columns)} feature columns ({', '.join(columns[:3])}, "
        "...), not on exactly the AnatCL embedding (emb_000..emb_511 or proj_000..proj_127); "
        "relevance maps go back through the encoder only: fit a probe on the embeddings alone")


def load_probe_score(probe, weights=None, descriptor="global", fold=0, device="auto",
                     target_class=None):
    """Load the encoder and a probe saved by ``save_probe``; return ``(ProbeScore, provenance)``.

    The probe's card must name the same encoder weights (SHA-256) as ``weights`` (or the
    released ``descriptor``/``fold``) and have exactly the embedding columns.
    ``provenance`` says which probe file, weights and score the relevance is for.
    """
    from anatcl_nipype.encoder.runner import load_network, resolve_device
    from anatcl_nipype.encoder.weights import fetch_weights
    from anatcl_nipype.prediction.persistence import load_probe

    released = weights is None
    network, identity = load_network(fetch_weights(descriptor, fold) if released else weights,
                                     resolve_device(device))
    model, card = load_probe(probe, expected_feature_source={"weights": {
        "sha256": identity["sha256"]}})
    use_head = embedding_kind(card["feature_source"]["columns"])
    weight, bias = probe_affine_map(model)
    weight, bias, explained = select_score(weight, bias, card, target_class)
    device = next(network.parameters()).device
    score = ProbeScore(network, weight, bias, use_head=use_head).to(device)
    weights_identity = {"descriptor": descriptor if released else None,
                        "fold": int(fold) if released else None, **identity}
    provenance = {"probe": {"file": str(Path(probe).resolve()),
                            "sha256": card["model_sha256"],  # load_probe checked it
                            "task": card["task"], "target": card["target"],
                            "classes": card.get("classes")},
                  "score": explained, "weights": weights_identity,
                  "embedding": "projection head (128-d)" if use_head else "backbone (512-d)"}
    return score, provenance

