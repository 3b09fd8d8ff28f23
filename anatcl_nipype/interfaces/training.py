"""Nipype interfaces for AnatCL pretraining and fine-tuning.

Thin adapters over :func:`anatcl_nipype.training.loops.pretrain` and
:func:`~anatcl_nipype.training.loops.finetune`: they match the maps to their
participants' regional measures and labels, train, and report the checkpoint, the
training log, the loss curve and a JSON provenance sidecar. torch is imported only when
a node runs.

A run is written into ``out_dir`` when it is given, else into the node's folder, and
resumes from its last saved epoch: a node stopped mid-run (Ctrl-C, a killed job) and run
again with the same inputs continues in its own folder (the interfaces tell Nipype they
can resume, so it keeps the folder); a given ``out_dir`` also lets a later node with more
``epochs`` continue the same run.

>>> AnatCLPretrain().inputs.lr, AnatCLFineTune().inputs.freeze_encoder_epochs
(0.0001, 0)
"""

import logging
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

import anatcl_nipype
from anatcl_nipype.bids import participant_ids_for
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import sha256_file, write_json_atomic
from anatcl_nipype.interfaces.encoder import choose_device
from anatcl_nipype.options import DESCRIPTORS, FINETUNE_TASKS

LOGGER = logging.getLogger("nipype.interface")
SIDECAR_NAME = "training.json"


class _TrainingInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="CAT12 modulated normalised grey-matter maps (mri/mwp1*.nii)")
    participant_ids = traits.List(traits.Str(),
                                  desc="one id per map; default: sub-<label> from each path")
    epochs = traits.Range(low=1, mandatory=True, desc="epochs to train (in all, when resuming)")
    lr = traits.Float(1e-4, usedefault=True, desc="Adam learning rate")
    weight_decay = traits.Float(5e-5, usedefault=True, desc="Adam weight decay")
    lr_step = traits.Range(low=1, value=10, usedefault=True,
                           desc="epochs between learning-rate decays")
    lr_decay = traits.Float(0.9, usedefault=True, desc="learning-rate factor at each decay")
    device = traits.Str("auto", usedefault=True, desc="auto, cpu, cuda or cuda:N")
    use_gpu = traits.Bool(False, usedefault=True,
                          desc="train on CUDA (MultiProc reserves a GPU slot); falls back to "
                               "CPU with a warning when CUDA is absent")
    amp = traits.Bool(True, usedefault=True, desc="mixed precision on CUDA (ignored on CPU)")
    gradient_checkpointing = traits.Bool(False, usedefault=True,
                                         desc="recompute ResNet stages in the backward pass "
                                              "(less GPU memory, more compute)")
    seed = traits.Int(0, usedefault=True, desc="seeds initialisation, data order, augmentation")
    resume = traits.Bool(True, usedefault=True,
                         desc="continue the run saved in the output folder, if any")
    volume_size = traits.Range(low=0, value=0, usedefault=True,
                               desc="shrink volumes to this cube side (tests, demos); 0 "
                                    "trains on full-size volumes, as AnatCL does")
    num_workers = traits.Range(low=0, value=0, usedefault=True,
                               desc="DataLoader processes reading volumes ahead")
    num_threads = traits.Int(1, usedefault=True,
                             desc="torch CPU threads (set from the node's n_procs)")
    save_every = traits.Range(low=0, value=0, usedefault=True,
                              desc="also keep epoch<k>.pth every this many epochs")
    out_dir = Directory(desc="write (and resume) the run here instead of the node's folder")


class _TrainingOutputSpec(TraitedSpec):
    checkpoint = File(exists=True, desc="last.pth in the official AnatCL format")
    training_log = File(exists=True, desc="TSV: epoch, loss, lr, seconds")
    loss_curve = File(exists=True, desc="training loss per epoch (SVG)")
    loss_curve_png = File(exists=True, desc="training loss per epoch (PNG)")
    out_json = File(exists=True, desc="provenance: settings, inputs and their hashes, "
                                      "checkpoint hash")
    participant_ids = traits.List(traits.Str(), desc="participants trained on, in order")


class _TrainingInterface(SimpleInterface):
    """What both training interfaces share: ids, options, outputs and the sidecar."""

    _can_resume = True

    def _participant_ids(self):
        return participant_ids_for(self.inputs.in_files, self.inputs.participant_ids
                                   if isdefined(self.inputs.participant_ids) else None)

    def _training_options(self, runtime):
        from anatcl_nipype.threads import set_torch_threads

        set_torch_threads(self.inputs.num_threads)
        inputs = self.inputs
        return dict(
            out_dir=Path(inputs.out_dir if isdefined(inputs.out_dir) else runtime.cwd),
            epochs=inputs.epochs, lr=inputs.lr, weight_decay=inputs.weight_decay,
            lr_step=inputs.lr_step, lr_decay=inputs.lr_decay,
            device=choose_device(inputs.device, inputs.use_gpu), amp=inputs.amp,
            gradient_checkpointing=inputs.gradient_checkpointing, seed=inputs.seed,
            resume=inputs.resume, volume_size=inputs.volume_size or None,
            num_workers=inputs.num_workers, save_every=inputs.save_every,
        )

    def _report(self, result, ids, maps, data):
        """Set the outputs and write the provenance sidecar beside the checkpoint."""
        sidecar = {
            "software": {"anatcl_nipype": anatcl_nipype.__version__,
                         "torch": result.options["torch_version"]},
            "run_id": result.run_id,
            "checkpoint": {"path": str(result.checkpoint.resolve()),
                           "sha256": sha256_file(result.checkpoint)},
            "epochs_completed": len(result.history),
            "resumed_from_epoch": result.resumed_from,
            "final_loss": result.history[-1].loss,
            "settings": result.options,
            "inputs": {pid: {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}
                       for pid, path in zip(ids, maps)},
            **data,
        }
        out_json = write_json_atomic(result.checkpoint.parent / SIDECAR_NAME, sidecar)
        svg, png = result.figures
        self._results.update(checkpoint=str(result.checkpoint), training_log=str(result.log_tsv),
                             loss_curve=str(svg), loss_curve_png=str(png),
                             out_json=str(out_json), participant_ids=list(ids))


class AnatCLPretrainInputSpec(_TrainingInputSpec):
    regional_tsv = File(exists=True, mandatory=True,
                        desc="regional measures table (participant_id, <atlas>_<region>_<measure>)")
    atlas = traits.Str(mandatory=True, desc="atlas of the descriptors, as in the columns "
                                            "(aparc_DK40, aparc, neuromorphometrics, ...)")
    measures = traits.List(traits.Str(), minlen=1, mandatory=True,
                           desc="measures per region, as in the columns (thickness; ThickAvg, "
                                "GrayVol, SurfArea; Vgm)")
    participants_tsv = File(exists=True, desc="BIDS participants.tsv with ages: adds the "
                                              "age-kernel term")
    age_column = traits.Str("age", usedefault=True, desc="participants.tsv column of ages")
    batch_size = traits.Range(low=2, value=32, usedefault=True, desc="subjects per batch")
    temperature = traits.Float(0.1, usedefault=True, desc="softmax temperature")
    sigma = traits.Float(2.0, usedefault=True,
                         desc="anatomical kernel width (normalised descriptor units)")
    age_sigma = traits.Float(desc="age kernel width in years; default: sigma")
    descriptor = traits.Enum(*DESCRIPTORS, usedefault=True,
                             desc="one kernel over all regions, or one per region averaged")
    alpha = traits.Float(1.0, usedefault=True, desc="weight of the anatomical term")
    lambd = traits.Float(1.0, usedefault=True, desc="weight of the age term")
    views = traits.Range(low=1, value=2, usedefault=True, desc="views per subject")
    augment = traits.List(traits.Enum("crop", "cutout"),
                          desc="random views; empty: identical views (the released recipe)")
    init_weights = File(exists=True, desc="start from this checkpoint instead of random weights")


class AnatCLPretrain(_TrainingInterface):
    """Pretrain AnatCL on CAT12 grey-matter maps with its anatomy-weighted contrastive loss.

    Wraps :func:`anatcl_nipype.training.loops.pretrain`. The descriptors are the
    ``atlas`` regions' ``measures`` of each participant in ``regional_tsv`` (the regional
    workflow's ``regional_tsv``;
    :func:`~anatcl_nipype.training.descriptors.descriptors_from_table`); ages come from
    ``participants_tsv`` when it is given. Outputs ``last.pth`` (official format),
    ``training_log.tsv``, ``loss_curve.svg``/``.png`` and ``training.json``.

    >>> from nipype import Node
    >>> node = Node(AnatCLPretrain(atlas="aparc_DK40", measures=["thickness"], epochs=50),
    ...             name="pretrain", n_procs=2)
    >>> node.inputs.num_threads, node.inputs.descriptor, node.inputs.batch_size
    (2, 'global', 32)
    """

    input_spec = AnatCLPretrainInputSpec
    output_spec = _TrainingOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.training.descriptors import descriptors_from_table
        from anatcl_nipype.training.loops import pretrain

        inputs = self.inputs
        ids = self._participant_ids()
        descriptors = descriptors_from_table(inputs.regional_tsv, inputs.atlas,
                                             list(inputs.measures), ids)
        if descriptors.dropped_regions:
            LOGGER.info("AnatCL pretraining: %s regions with no values dropped: %s",
                        inputs.atlas, ", ".join(descriptors.dropped_regions))
        ages = self._ages(ids) if isdefined(inputs.participants_tsv) else None
        result = pretrain(
            list(inputs.in_files), descriptors, ages, **self._training_options(runtime),
            batch_size=inputs.batch_size, temperature=inputs.temperature, sigma=inputs.sigma,
            age_sigma=inputs.age_sigma if isdefined(inputs.age_sigma) else None,
            descriptor=inputs.descriptor, alpha=inputs.alpha, lambd=inputs.lambd,
            views=inputs.views, augment=inputs.augment if isdefined(inputs.augment) else None,
            init_weights=inputs.init_weights if isdefined(inputs.init_weights) else None,
        )
        self._report(result, ids, inputs.in_files, {"descriptors": {
            "regional_tsv": {"path": str(Path(inputs.regional_tsv).resolve()),
                             "sha256": sha256_file(inputs.regional_tsv)},
            "atlas": descriptors.atlas, "measures": list(descriptors.measures),
            "regions": list(descriptors.regions),
            "dropped_regions": list(descriptors.dropped_regions),
            "ages": inputs.age_column if ages is not None else None,
        }})
        return runtime

    def _ages(self, ids):
        from anatcl_nipype.prediction.labels import load_labels

        ages = load_labels(self.inputs.participants_tsv, self.inputs.age_column, ids,
                           "regression")
        if ages.dropped:
            raise AnatCLError(f"{self.inputs.participants_tsv}: no {self.inputs.age_column} "
                              f"for {', '.join(pid for pid, _ in ages.dropped)}; fill it in, "
                              "leave their maps out, or train without participants_tsv")
        return ages.labels


class AnatCLFineTuneInputSpec(_TrainingInputSpec):
    participants_tsv = File(exists=True, mandatory=True, desc="BIDS participants.tsv")
    target = traits.Str(mandatory=True, desc="participants.tsv column to learn")
    task = traits.Enum(*FINETUNE_TASKS, usedefault=True,
                       desc="cross-entropy over classes, or MSE on the z-scored target")
    init_weights = File(exists=True, mandatory=True, desc="pretrained AnatCL checkpoint")
    freeze_encoder_epochs = traits.Range(low=0, value=0, usedefault=True,
                                         desc="epochs training only the linear head first")
    batch_size = traits.Range(low=2, value=8, usedefault=True, desc="subjects per batch")


class AnatCLFineTune(_TrainingInterface):
    """Fine-tune AnatCL end to end (encoder + linear head) on a participants.tsv column.

    Wraps :func:`anatcl_nipype.training.loops.finetune`. Participants whose ``target``
    is ``n/a`` are left out (listed in the sidecar). The checkpoint keeps the backbone
    under ``model`` (loads in the official package) and the head under ``task_head``.

    >>> AnatCLFineTune(target="diagnosis", freeze_encoder_epochs=2, epochs=10).inputs.task
    'classification'
    """

    input_spec = AnatCLFineTuneInputSpec
    output_spec = _TrainingOutputSpec

    def _run_interface(self, runtime):
        from anatcl_nipype.prediction.labels import load_labels
        from anatcl_nipype.training.loops import finetune

        inputs = self.inputs
        ids = self._participant_ids()
        labels = load_labels(inputs.participants_tsv, inputs.target, ids, inputs.task)
        for pid, reason in labels.dropped:
            LOGGER.warning("AnatCL fine-tuning: %s left out (%s)", pid, reason)
        map_of = dict(zip(ids, inputs.in_files))
        maps = [map_of[pid] for pid in labels.participant_ids]
        result = finetune(
            maps, labels.labels, task=inputs.task, init_weights=inputs.init_weights,
            freeze_encoder_epochs=inputs.freeze_encoder_epochs,
            batch_size=inputs.batch_size, **self._training_options(runtime),
        )
        self._report(result, labels.participant_ids, maps, {"labels": {
            "participants_tsv": {"path": str(Path(inputs.participants_tsv).resolve()),
                                 "sha256": sha256_file(inputs.participants_tsv)},
            "target": inputs.target, "task": inputs.task,
            "dropped": [{"participant_id": pid, "reason": reason}
                        for pid, reason in labels.dropped],
        }})
        return runtime
