"""Pretraining and fine-tuning: learning, official-format checkpoints, exact resume, freezing."""

import nibabel as nib
import numpy as np
import pytest
import torch
from anatcl import AnatCL
from conftest import write_map

from anatcl_nipype.data.cohort import make_cat12_cohort
from anatcl_nipype.encoder import AnatCLEncoder, AnatCLNetwork, load_checkpoint
from anatcl_nipype.encoder.checkpoint import write_random_checkpoint
from anatcl_nipype.errors import AnatCLError, CheckpointError, RegionalError, VolumeError
from anatcl_nipype.regional import measures_to_row, read_cat12_roi_xml, write_measures_tsv
from anatcl_nipype.training.augment import augment_batch, check_augmentations, cutout, random_crop
from anatcl_nipype.training.descriptors import descriptors_from_table
from anatcl_nipype.training.loops import VolumeDataset, finetune, pretrain
from anatcl_nipype.training.loss import local_rbf_kernel, normalise_descriptors

SIDE = 32  # cohort volumes are shrunk to 32^3 so that a CPU trains in seconds
SIGMA = 2.0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """12 synthetic subjects and their regional table (synthetic atlas Vgm, DK40 thickness)."""
    root = tmp_path_factory.mktemp("cohort")
    cohort = make_cat12_cohort(root, n_subjects=12, seed=0)
    rows = {}
    for subject in cohort.subjects:
        measures = [*read_cat12_roi_xml(cohort.roi_xml(subject)).values(),
                    *read_cat12_roi_xml(cohort.surface_roi_xml(subject)).values()]
        rows[subject] = measures_to_row(measures)
    write_measures_tsv(rows, root / "regional.tsv")
    return cohort


@pytest.fixture(scope="module")
def descriptors(cohort):
    return descriptors_from_table(cohort.root / "regional.tsv", "synthetic", ["Vgm"],
                                  cohort.subjects)


@pytest.fixture(scope="module")
def pretrained(cohort, descriptors, tmp_path_factory):
    """3 epochs, all 12 subjects in one batch, local kernel over the 34 regional GM volumes."""
    with torch.random.fork_rng():
        return pretrain(cohort.gm_maps, descriptors, out_dir=tmp_path_factory.mktemp("pretrain"),
                        epochs=3, batch_size=12, lr=1e-3, descriptor="local", sigma=SIGMA,
                        volume_size=SIDE, seed=0)


def small_volumes(count, side=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((side,) * 3, dtype=np.float32) + 0.1 for _ in range(count)]


def batch_projections(network, maps):
    """Projections of all maps in one batch, BatchNorm on batch statistics (as in training)."""
    volumes = torch.stack([volume for _, volume in VolumeDataset(maps, SIDE)])
    network.train()
    with torch.no_grad():
        return network(volumes, use_head=True)


def pair_concordance(similarities, kernel):
    """Share of (pair, pair) comparisons where the anatomically closer pair is also closer
    in embedding space (0.5 is chance, 1 is the kernel's order exactly)."""
    upper = np.triu_indices(len(kernel), 1)
    anatomy = np.sign(np.subtract.outer(kernel[upper], kernel[upper]))
    embedding = np.sign(np.subtract.outer(similarities[upper], similarities[upper]))
    compared = anatomy != 0
    return float(np.mean(anatomy[compared] == embedding[compared]))


def tensors_equal(first, second):
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_pretraining_lowers_the_loss_and_orders_pairs_by_anatomy(pretrained, cohort, descriptors):
    """The loss falls every epoch, and pairs of subjects with similar regional GM volumes
    end up closer than dissimilar pairs.

    Measured as the pair concordance between the cosine similarity of the projections
    and the anatomical kernel the loss uses. With BatchNorm on batch statistics (what
    the loss trains; running statistics have seen only 3 updates) the random network
    scores 0.58 and the trained one 0.91-0.93 over training seeds 0-2; the margins
    (+0.2, and at least 0.8) leave room for other CPUs' rounding. (In eval mode the
    random network already scores 0.97: its untrained BatchNorm passes the overall GM
    amount through, which orders pairs much like a GM-volume kernel does.)
    """
    losses = [record.loss for record in pretrained.history]
    assert losses[0] > losses[1] > losses[2]  # seen: 4.59, 3.28, 3.13
    kernel = local_rbf_kernel(normalise_descriptors(descriptors.values)[0], SIGMA).numpy()
    torch.manual_seed(0)  # the initialisation pretrain(seed=0) started from
    untrained = AnatCLNetwork()
    trained = AnatCLNetwork()
    trained.load_state_dict(load_checkpoint(pretrained.checkpoint).state_dict)
    before = batch_projections(untrained, cohort.gm_maps)
    after = batch_projections(trained, cohort.gm_maps)
    concordance_before = pair_concordance((before @ before.T).numpy(), kernel)
    concordance_after = pair_concordance((after @ after.T).numpy(), kernel)
    assert concordance_after >= max(0.8, concordance_before + 0.2), (concordance_before,
                                                                     concordance_after)


@pytest.mark.slow
def test_checkpoint_loads_in_official_package_and_here_with_identical_outputs(pretrained, cohort):
    official = AnatCL(pretrained=False)
    official.backbone.load_state_dict(
        torch.load(pretrained.checkpoint, map_location="cpu", weights_only=False)["model"])
    official.eval()
    cropped = np.asarray(nib.load(cohort.gm_maps[0]).dataobj, dtype=np.float32)[:, 8:136, :]
    volume = torch.from_numpy(cropped.copy())[None, None]
    with torch.no_grad():
        expected = official(volume).numpy()
    ours = AnatCLEncoder(weights=pretrained.checkpoint).encode(cohort.gm_maps[:1])
    np.testing.assert_array_equal(ours, expected)
    assert np.abs(expected).max() > 1e-2
    assert load_checkpoint(pretrained.checkpoint).epoch == 3


@pytest.mark.slow
def test_run_writes_log_figures_and_records_its_settings(pretrained, descriptors):
    lines = pretrained.log_tsv.read_text().splitlines()
    assert lines[0] == "epoch\tloss\tlr\tseconds" and len(lines) == 4
    assert [float(line.split("\t")[1]) for line in lines[1:]] == [
        record.loss for record in pretrained.history]
    assert [float(line.split("\t")[2]) for line in lines[1:]] == [1e-3] * 3
    svg, png = pretrained.figures
    assert svg.read_text().startswith("<?xml") and png.read_bytes()[:4] == b"\x89PNG"
    saved = torch.load(pretrained.checkpoint, map_location="cpu", weights_only=False)
    assert {"model", "opts", "optimizer", "epoch", "run_id"} <= saved.keys()
    opts = vars(saved["opts"])
    assert opts["anat_atlas"] == "synthetic" and opts["anat_regions"] == list(descriptors.regions)
    mean = np.array(opts["descriptor_mean"])
    assert mean.shape == (34, 1)
    np.testing.assert_allclose(mean[:, 0], descriptors.values.mean(axis=0)[:, 0])
    assert opts["lr_step"] == 10 and opts["lr_decay"] == 0.9 and opts["precision"] == "fp32"
    assert saved["run_id"] == pretrained.run_id
    assert "_tf_none_lr0.001_step_step10_rate0.9_" in pretrained.run_id
    assert pretrained.run_id.endswith("_anat_synthetic_normTrue_local_lambd1.0")


@pytest.mark.slow
def test_resume_after_interruption_reaches_the_same_weights(tmp_path):
    """Stopped after epoch 1 of 2 (an exception from the progress callback) and resumed,
    the run ends bit-identical to an uninterrupted one: CPU kernels are deterministic and
    every random draw depends only on (seed, epoch). The learning rate halves after each
    epoch, so epoch 2 also needs the scheduler's saved state."""
    volumes, rng = small_volumes(6), np.random.default_rng(1)
    data = dict(descriptors=rng.normal(size=(6, 5, 2)), ages=rng.uniform(20, 80, 6))
    options = dict(epochs=2, batch_size=4, lr_step=1, lr_decay=0.5, augment=["crop", "cutout"],
                   sigma=3.0, age_sigma=10.0, seed=5)
    straight = pretrain(volumes, **data, out_dir=tmp_path / "straight", **options)

    def stop_after_epoch_1(record):
        if record.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(volumes, **data, out_dir=tmp_path / "cut", progress=stop_after_epoch_1,
                 **options)
    assert load_checkpoint(tmp_path / "cut" / "last.pth").epoch == 1
    assert len((tmp_path / "cut" / "training_log.tsv").read_text().splitlines()) == 2
    resumed = pretrain(volumes, **data, out_dir=tmp_path / "cut", **options)
    assert resumed.resumed_from == 1 and [r.epoch for r in resumed.history] == [1, 2]
    assert [r[:3] for r in resumed.history] == [r[:3] for r in straight.history]
    assert [r.lr for r in resumed.history] == [1e-4, 5e-5]
    first = torch.load(straight.checkpoint, weights_only=False)
    second = torch.load(resumed.checkpoint, weights_only=False)
    assert tensors_equal(first["model"], second["model"])
    assert all(tensors_equal(first["optimizer"]["state"][k], second["optimizer"]["state"][k])
               for k in first["optimizer"]["state"])
    assert first["scheduler"] == second["scheduler"] and second["epoch"] == 2
    with pytest.raises(AnatCLError, match=r"holds a run with other settings or data \(lr "
                                          r"0\.0001 -> 0\.001\); pass resume=False"):
        pretrain(volumes, **data, out_dir=tmp_path / "cut", **{**options, "lr": 1e-3})


@pytest.mark.slow
def test_gradient_checkpointing_and_loader_workers_change_nothing(tmp_path):
    """Recomputing the stages (BatchNorm statistics updated once) and reading volumes in
    worker processes give the weights of the plain run, bit for bit."""
    volumes, descriptors = small_volumes(4), np.random.default_rng(2).normal(size=(4, 3))
    options = dict(epochs=1, batch_size=4, sigma=3.0, augment=["cutout"])
    plain = pretrain(volumes, descriptors, out_dir=tmp_path / "plain", **options)
    recomputed = pretrain(volumes, descriptors, out_dir=tmp_path / "gc",
                          gradient_checkpointing=True, **options)
    workers = pretrain(volumes, descriptors, out_dir=tmp_path / "workers", num_workers=2,
                       **options)
    reference = load_checkpoint(plain.checkpoint).state_dict
    assert tensors_equal(load_checkpoint(recomputed.checkpoint).state_dict, reference)
    assert tensors_equal(load_checkpoint(workers.checkpoint).state_dict, reference)
    assert reference["encoder.bn1.num_batches_tracked"] == 1
    torch.manual_seed(0)  # pretrain's initialisation for seed 0: training moved away from it
    assert not torch.equal(reference["encoder.conv1.weight"], AnatCLNetwork().encoder.conv1.weight)


@pytest.mark.slow
def test_finetune_frozen_epoch_keeps_encoder_then_trains_it(pretrained, cohort, tmp_path):
    """Planted label: the cohort's diagnosis (AD atrophy in four regions). All 12 subjects
    in one batch make each step a full-batch step, so the loss falls steadily (seen: 0.69,
    0.67, 0.36, 0.23); the assertion asks for less than two thirds of the first epoch's."""
    diagnoses = [cohort.ground_truth["subjects"][s]["diagnosis"] for s in cohort.subjects]
    result = finetune(cohort.gm_maps, diagnoses, init_weights=pretrained.checkpoint,
                      out_dir=tmp_path, epochs=4, freeze_encoder_epochs=1, batch_size=12,
                      volume_size=SIDE, save_every=1)
    initial = load_checkpoint(pretrained.checkpoint).state_dict
    epochs = [torch.load(tmp_path / f"epoch{k:03d}.pth", weights_only=False) for k in (1, 2, 4)]
    encoder_keys = [key for key in initial if key.startswith("encoder.")]
    assert all(torch.equal(epochs[0]["model"][key], initial[key]) for key in encoder_keys)
    assert not torch.equal(epochs[1]["model"]["encoder.conv1.weight"],
                           initial["encoder.conv1.weight"])
    assert not torch.equal(epochs[1]["model"]["encoder.bn1.running_mean"],
                           initial["encoder.bn1.running_mean"])
    assert all(torch.equal(epochs[2]["model"][key], initial[key])
               for key in initial if key.startswith("head."))  # projection head: unused
    torch.manual_seed(0)
    initial_head = torch.nn.Linear(512, 2).state_dict()
    assert not torch.equal(epochs[0]["task_head"]["weight"], initial_head["weight"])
    losses = [record.loss for record in result.history]
    assert losses[-1] < 2 / 3 * losses[0], losses
    opts = vars(epochs[2]["opts"])
    assert opts["classes"] == ["AD", "CN"] and opts["freeze_encoder_epochs"] == 1
    assert load_checkpoint(result.checkpoint).epoch == 4
    AnatCL(pretrained=False).backbone.load_state_dict(
        torch.load(result.checkpoint, weights_only=False)["model"])


@pytest.mark.slow
def test_finetune_regression_standardises_the_target(tmp_path):
    ages = [30.0, 50.0, 40.0, 60.0]
    weights = write_random_checkpoint(tmp_path / "init.pth", seed=1)
    result = finetune(small_volumes(4), ages, task="regression", init_weights=weights,
                      out_dir=tmp_path / "run", epochs=1, batch_size=4)
    saved = torch.load(result.checkpoint, weights_only=False)
    assert saved["task_head"]["weight"].shape == (1, 512)
    assert vars(saved["opts"])["target_mean"] == 45.0
    assert vars(saved["opts"])["target_std"] == pytest.approx(np.std(ages))
    assert result.options["init_weights_sha256"] == load_checkpoint(weights).sha256


@pytest.mark.parametrize("call, message", [
    (lambda out: pretrain(small_volumes(4), np.zeros((3, 2)), out_dir=out, epochs=1),
     r"descriptors of shape \(3, 2\) for 4 volumes"),
    (lambda out: pretrain(small_volumes(4), np.eye(4), out_dir=out, epochs=1, batch_size=1),
     r"batch_size must be an integer >= 2, got 1 \(BatchNorm"),
    (lambda out: pretrain(small_volumes(4), np.eye(4), out_dir=out, epochs=1, augment=["flip"]),
     r"unknown augmentation\(s\) 'flip'; choose from crop, cutout"),
    (lambda out: pretrain(small_volumes(4), np.eye(4), out_dir=out, epochs=1, volume_size=4),
     r"volume_size must be None \(full size\), an integer >= 8"),
    (lambda out: pretrain(small_volumes(4), np.eye(4), [20, 30, np.nan, 40], out_dir=out,
                          epochs=1), r"ages must be 4 finite numbers, one per volume"),
    (lambda out: pretrain(small_volumes(4), np.eye(4), out_dir=out, epochs=0),
     r"epochs must be an integer >= 1, got 0"),
    (lambda out: finetune(small_volumes(3), ["AD"] * 3, init_weights="w.pth", out_dir=out,
                          epochs=1), r"every label is 'AD': classification needs 2 classes"),
    (lambda out: finetune(small_volumes(2), ["AD", "CN"], init_weights=None, out_dir=out,
                          epochs=1), r"finetune needs init_weights"),
    (lambda out: finetune(small_volumes(2), [1, 2], task="survival", init_weights=None,
                          out_dir=out, epochs=1), r"task must be one of"),
])
def test_bad_options_raise_before_training(call, message, tmp_path):
    with pytest.raises(AnatCLError, match=message):
        call(tmp_path)
    assert not (tmp_path / "last.pth").exists()


def test_resume_refuses_a_checkpoint_this_loop_did_not_write(tmp_path):
    write_random_checkpoint(tmp_path / "last.pth")
    with pytest.raises(CheckpointError, match=r"last.pth: not written by this training loop "
                                              r"\(no scheduler, history\); pass resume=False"):
        pretrain(small_volumes(2), np.eye(2), out_dir=tmp_path, epochs=1)
    (tmp_path / "last.pth").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match=r"last.pth: not a readable PyTorch checkpoint.*"
                                              r"delete it, or pass resume=False"):
        pretrain(small_volumes(2), np.eye(2), out_dir=tmp_path, epochs=1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mixed_precision_and_checkpointing_on_cuda(tmp_path):
    result = pretrain(small_volumes(4, side=32), np.eye(4), out_dir=tmp_path, epochs=2,
                      batch_size=4, sigma=3.0, device="cuda", gradient_checkpointing=True)
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert result.options["precision"] == expected and result.options["device"] == "cuda"
    assert all(np.isfinite(record.loss) for record in result.history)
    saved = torch.load(result.checkpoint, weights_only=False)  # no map_location: CPU tensors
    assert saved["model"]["encoder.conv1.weight"].device.type == "cpu"
    assert saved["optimizer"]["state"][0]["exp_avg"].device.type == "cpu"


def test_dataset_reads_maps_when_asked_and_shrinks_them(cohort, tmp_path):
    dataset = VolumeDataset([cohort.gm_maps[0], tmp_path / "mwp1sub-99_T1w.nii"], volume_size=SIDE)
    index, volume = dataset[0]
    assert index == 0 and volume.shape == (1, SIDE, SIDE, SIDE) and volume.dtype == torch.float32
    full = VolumeDataset(cohort.gm_maps[:1])[0][1]
    assert full.shape == (1, 121, 128, 121)
    assert float(volume.mean()) == pytest.approx(float(full.mean()), rel=0.05)
    with pytest.raises(VolumeError, match="mwp1sub-99_T1w.nii: no such file"):
        dataset[1]
    off_grid = write_map(tmp_path / "mwp1sub-98_T1w.nii", np.full((91, 109, 91), 0.5, np.float32))
    with pytest.raises(VolumeError, match="not on the CAT12 1.5 mm MNI grid"):
        VolumeDataset([off_grid])[0]


def test_descriptors_from_cat12_surface_table(cohort):
    table = cohort.root / "regional.tsv"
    thickness = descriptors_from_table(table, "aparc_DK40", "thickness", ["02", "sub-01"])
    assert thickness.values.shape == (2, 68, 1)
    assert thickness.dropped_regions == ("lunknown", "runknown", "lcorpuscallosum",
                                         "rcorpuscallosum")
    xml = read_cat12_roi_xml(cohort.surface_roi_xml("sub-01"))["aparc_DK40"]
    assert thickness.participant_ids == ("sub-02", "sub-01")
    assert thickness.regions[0] == "lbankssts"
    assert thickness.values[1, 0, 0] == xml.measures["thickness"][xml.names.index("lbankssts")]
    volumes = descriptors_from_table(table, "synthetic", ["Vgm", "Vwm", "Vcsf"])
    assert volumes.values.shape == (12, 34, 3) and volumes.measures == ("Vgm", "Vwm", "Vcsf")


@pytest.mark.parametrize("text, participants, message", [
    ("participant_id\tdk_lA_CT\nsub-01\t2.5\n", ["sub-01", "sub-07"],
     r"no row for 1 participant\(s\): sub-07; extract"),
    ("participant_id\tdk_lA_CT\nsub-01\t2.5\n", None, r"no column dk_<region>_SA; the columns "
                                                      r"look like dk_lA_CT"),
    ("participant_id\tdk_lA_CT\tdk_lA_SA\tdk_lB_CT\nsub-01\t2.5\t900\t2.4\n", None,
     r"dk region\(s\) lB have no SA column"),
    ("participant_id\tdk_lA_CT\tdk_lA_SA\nsub-01\t2.5\t900\nsub-02\tn/a\t950\n", None,
     r"1 missing value\(s\) \(n/a\) in the descriptors: sub-02 dk_lA_CT; re-extract"),
])
def test_descriptor_table_problems_are_named(tmp_path, text, participants, message):
    (tmp_path / "regional.tsv").write_text(text)
    with pytest.raises(RegionalError, match=message):
        descriptors_from_table(tmp_path / "regional.tsv", "dk", ["CT", "SA"], participants)


def test_crop_keeps_a_random_box_centred_and_cutout_zeroes_one():
    volumes = torch.arange(2 * 8 ** 3, dtype=torch.float32).reshape(2, 1, 8, 8, 8) + 1
    views = random_crop(volumes, torch.Generator().manual_seed(0))
    box = views[0, 0, 1:7, 1:7, 1:7]  # ceil(0.75 * 8) = 6 voxels, centred
    assert int((views[0] != 0).sum()) == 6 ** 3 and bool((box != 0).all())
    corner = [int(i) for i in np.unravel_index(int(box[0, 0, 0]) - 1, (8, 8, 8))]
    assert torch.equal(box, volumes[0, 0, corner[0]:corner[0] + 6, corner[1]:corner[1] + 6,
                                    corner[2]:corner[2] + 6])
    holes = cutout(torch.ones(1, 1, 8, 12, 8), torch.Generator().manual_seed(1)) == 0
    rows = holes[0, 0].nonzero()
    assert len(rows) == 2 * 3 * 2  # ceil(0.25 * side) voxels along each axis, in one box
    assert (rows.max(0).values - rows.min(0).values).tolist() == [1, 2, 1]


def test_views_repeat_with_the_seed_and_differ_between_draws():
    volumes = torch.rand(3, 1, 12, 12, 12, generator=torch.Generator().manual_seed(0))
    names = check_augmentations(["crop", "cutout"])
    generator = torch.Generator().manual_seed(4)
    first = augment_batch(volumes, names, generator)
    second = augment_batch(volumes, names, generator)
    again = augment_batch(volumes, names, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, second)
