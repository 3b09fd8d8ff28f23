"""Read and write AnatCL checkpoints safely, in the official format.

An official checkpoint is a ``torch.save``d dict whose ``model`` entry is the
state dict of :class:`~anatcl_nipype.encoder.model.AnatCLNetwork`; the training
code also stores ``opts`` (an ``argparse.Namespace``), ``optimizer``, ``epoch`` and
``run_id``. The official package loads it with ``weights_only=False``, which runs
any code pickled in the file. Here files are read with ``weights_only=True`` and
only ``argparse.Namespace`` is allowed beyond tensors and plain containers.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "weights.pth")
>>> _ = write_random_checkpoint(path, seed=0)
>>> checkpoint = load_checkpoint(path)
>>> len(checkpoint.state_dict), checkpoint.epoch, len(checkpoint.sha256)
(124, 0, 64)
"""

import argparse
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch

from anatcl_nipype.encoder.model import AnatCLNetwork
from anatcl_nipype.errors import CheckpointError, WeightsError
from anatcl_nipype.files import atomic_write, sha256_file

#: Globals an official checkpoint may hold besides tensors and plain containers.
ALLOWED_GLOBALS = (argparse.Namespace,)
#: Prefixes added by ``nn.DataParallel`` (``module.``) and the ``AnatCL`` wrapper (``backbone.``).
WRAPPER_PREFIXES = ("module.", "backbone.")
#: How deep lists/dicts in a checkpoint's ``opts`` may nest (the official ones are flat).
MAX_OPTION_DEPTH = 8


@dataclass
class Checkpoint:
    """A verified AnatCL state dict and where it came from."""

    path: Path
    sha256: str
    state_dict: dict
    epoch: int | None = None
    run_id: str | None = None
    options: dict = field(default_factory=dict)


def load_checkpoint(path):
    """Load an AnatCL checkpoint without executing anything stored in it.

    Accepts the official dict format (``{"model": state_dict, ...}``) and bare
    state dicts, with or without ``module.``/``backbone.`` key prefixes.
    Raises :class:`CheckpointError` for unreadable files, files that ask to run
    code, and state dicts whose keys or shapes do not match the AnatCL network;
    :class:`WeightsError` (naming the key) for tensors that are sparse, meta,
    quantised, integer where floats belong, or not finite, and for metadata
    (``opts``, ``epoch``, ``run_id``) of unexpected types.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; pass the path of a weights.pth")
    sha256 = sha256_file(path)
    content = read_checkpoint_file(path)
    state_dict = strip_wrapper_prefixes(_find_state_dict(content, path))
    check_state_dict(state_dict, path)
    metadata = check_checkpoint_metadata(content if "model" in content else {}, path)
    return Checkpoint(path=path, sha256=sha256, state_dict=state_dict, **metadata)


def check_checkpoint_metadata(content, path="checkpoint"):
    """Check ``opts``, ``epoch`` and ``run_id`` of a checkpoint dict; return them.

    ``opts`` must be an ``argparse.Namespace`` or a dict of plain values (None, bool,
    int, float, str, and lists/tuples/dicts of them, nested at most
    :data:`MAX_OPTION_DEPTH` deep), ``epoch`` a non-negative int, ``run_id`` a str;
    each may be absent. Anything else (a tensor option, a bytes run id) raises
    :class:`WeightsError` naming the key and the file.

    >>> check_checkpoint_metadata({"epoch": 3, "run_id": "r1", "opts": {"lr": 1e-4}})
    {'epoch': 3, 'run_id': 'r1', 'options': {'lr': 0.0001}}
    >>> check_checkpoint_metadata({"run_id": b"r1"}, "w.pth")
    Traceback (most recent call last):
    ...
    anatcl_nipype.errors.WeightsError: w.pth: metadata 'run_id' is bytes, expected a str; ...
    """
    epoch, run_id = content.get("epoch"), content.get("run_id")
    if epoch is not None and (type(epoch) is not int or epoch < 0):
        raise WeightsError(_metadata_message(path, "epoch", epoch, "a non-negative int"))
    if run_id is not None and not isinstance(run_id, str):
        raise WeightsError(_metadata_message(path, "run_id", run_id, "a str"))
    options = content.get("opts")
    if isinstance(options, argparse.Namespace):
        options = vars(options)
    if options is not None and not isinstance(options, dict):
        raise WeightsError(_metadata_message(path, "opts", options,
                                             "an argparse.Namespace or a dict"))
    for key, value in (options or {}).items():
        if not isinstance(key, str) or not _is_plain(value, MAX_OPTION_DEPTH):
            raise WeightsError(_metadata_message(
                path, f"opts.{key}", value, "a plain value (None, bool, int, float, str or "
                f"lists/dicts of them, at most {MAX_OPTION_DEPTH} deep) under a str name"))
    return {"epoch": epoch, "run_id": run_id, "options": dict(options or {})}


def _is_plain(value, depth):
    if value is None or type(value) in (bool, int, float, str):
        return True
    if depth <= 0:
        return False
    if type(value) in (list, tuple):
        return all(_is_plain(item, depth - 1) for item in value)
    if type(value) is dict:
        return all(isinstance(key, str) and _is_plain(item, depth - 1)
                   for key, item in value.items())
    return False


def _metadata_message(path, key, value, expected):
    return (f"{path}: metadata {key!r} is {type(value).__name__}, expected {expected}; "
            "the file was not written by AnatCL's training code or was altered. Use the "
            "official weights or a checkpoint saved with save_checkpoint")


def read_checkpoint_file(path):
    """``torch.load`` a checkpoint with ``weights_only=True`` plus :data:`ALLOWED_GLOBALS`.

    Returns the stored dict; raises :class:`CheckpointError` for unreadable files and for
    files that ask to run code (nothing of them is executed).
    """
    torch.serialization.add_safe_globals(list(ALLOWED_GLOBALS))
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        message = str(error)
        if "Unsupported global:" not in message:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint "
                                  "(its pickled content is invalid)") from None
        blocked = message.split("Unsupported global:")[-1].split("was not")[0].strip()
        raise CheckpointError(
            f"{path}: refused to load: the file asks to run code or build objects that are "
            f"not allowed in a weights file ({blocked}). Nothing from it was executed. Use the "
            "official weights (anatcl-nipype weights fetch) or a file you saved yourself."
        ) from None
    except Exception as error:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'empty or truncated'})"
        ) from None
    if not isinstance(content, dict):
        raise CheckpointError(f"{path}: holds a {type(content).__name__}, not a checkpoint dict")
    return content


def _find_state_dict(content, path):
    if "model" in content:
        content = content["model"]
    if not isinstance(content, dict) or not all(
        isinstance(v, torch.Tensor) for v in content.values()
    ):
        raise CheckpointError(
            f"{path}: no state dict found: expected a dict of tensors, "
            "or a dict with a 'model' entry"
        )
    odd_keys = [key for key in content if not isinstance(key, str)]
    if odd_keys:
        raise WeightsError(f"{path}: state dict key {odd_keys[0]!r} is a "
                           f"{type(odd_keys[0]).__name__}, not a parameter name (str)")
    return content


def strip_wrapper_prefixes(state_dict):
    """Remove ``module.``/``backbone.`` prefixes shared by every key.

    >>> list(strip_wrapper_prefixes({"module.backbone.head.0.bias": 1}))
    ['head.0.bias']
    """
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if state_dict and all(key.startswith(prefix) for key in state_dict):
                state_dict = {key[len(prefix):]: value for key, value in state_dict.items()}
                stripped = True
    return state_dict


def check_state_dict(state_dict, path="state dict"):
    """Check keys, shapes and every tensor of a state dict against the AnatCL network.

    Raises :class:`CheckpointError` listing missing, unexpected and mis-shaped keys, and
    :class:`WeightsError` naming the first key whose tensor cannot be loaded as it is
    (see :func:`check_tensor`).
    """
    with torch.device("meta"):  # shapes and dtypes only: nothing allocated or initialised
        expected = AnatCLNetwork().state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = [
        f"{key} {tuple(state_dict[key].shape)} (expected {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state_dict and state_dict[key].shape != value.shape
    ]
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                            ("wrong shapes", misshaped))
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"{path}: not an AnatCL ResNet-18 checkpoint: " + "; ".join(problems)
        )
    for key, reference in expected.items():
        check_tensor(state_dict[key], reference.is_floating_point(), key, path)


def check_tensor(tensor, floating, key, path="state dict"):
    """Refuse a tensor the network cannot take as it is; raise :class:`WeightsError`.

    It must be dense and strided (not sparse, not meta, not quantised), floating when
    ``floating`` (weights, BatchNorm statistics) with every value finite, else of an
    integer type (BatchNorm's ``num_batches_tracked``): nothing is cast silently.

    >>> check_tensor(torch.tensor([1.0, float("nan")]), True, "head.0.bias", "w.pth")
    Traceback (most recent call last):
    ...
    anatcl_nipype.errors.WeightsError: w.pth: head.0.bias: 1 of 2 values are NaN or ...
    """
    problem = None
    if tensor.layout != torch.strided:
        problem = f"a {tensor.layout} tensor; a weights file holds dense tensors"
    elif tensor.is_meta:
        problem = "a meta tensor (shape only, no values)"
    elif tensor.is_quantized:
        problem = f"a quantised tensor ({tensor.dtype})"
    elif floating and not tensor.is_floating_point():
        problem = f"of type {tensor.dtype} where the network holds floating-point values"
    elif not floating and (tensor.is_floating_point() or tensor.is_complex()
                           or tensor.dtype == torch.bool):
        problem = f"of type {tensor.dtype} where the network holds an integer counter"
    elif floating and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        problem = f"{bad} of {tensor.numel()} values are NaN or infinite"
    if problem:
        raise WeightsError(f"{path}: {key}: {problem}. The file is damaged or was not "
                           "saved from a trained AnatCL network; use the official weights "
                           "or retrain")


def save_checkpoint(path, network, options=None, optimizer=None, epoch=0, run_id=""):
    """Write ``network`` in the official format, atomically.

    The file holds ``model``, ``opts`` (``argparse.Namespace``), ``optimizer``
    (a state dict), ``epoch`` and ``run_id``, and loads in the official
    ``anatcl`` package as well as with :func:`load_checkpoint`.
    """
    content = {
        "model": network.state_dict(),
        "opts": argparse.Namespace(**(options or {})),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "epoch": int(epoch),
        "run_id": str(run_id),
    }
    with atomic_write(path) as tmp:
        torch.save(content, tmp)
    return Path(path)


def make_random_network(seed=0):
    """An :class:`AnatCLNetwork` with seeded random weights and non-trivial BatchNorm stats.

    Used by the tests and the demo where no pretrained weights can be downloaded:
    its embeddings are deterministic but carry no learned anatomy.
    """
    generator = torch.Generator().manual_seed(seed)
    network = AnatCLNetwork()
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(1000)
            elif name.endswith("running_var") or (name.endswith(".weight") and tensor.ndim == 1):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            elif name.endswith("running_mean") or name.endswith(".bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
    return network


def write_random_checkpoint(path, seed=0):
    """Save :func:`make_random_network` in the official format (opts, optimizer, epoch)."""
    network = make_random_network(seed)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4, weight_decay=5e-5)
    options = {"model": "resnet18", "seed": seed, "lr": 1e-4, "temp": 0.1, "random": True}
    return save_checkpoint(path, network, options, optimizer, epoch=0, run_id=f"random-seed{seed}")
