"""The training interfaces as Nipype nodes on a small synthetic cohort."""

import csv
import json

import pytest
import torch
from nipype import Node, Workflow

from anatcl_nipype.encoder import load_checkpoint
from anatcl_nipype.files import sha256_file
from anatcl_nipype.interfaces.training import AnatCLFineTune, AnatCLPretrain
from anatcl_nipype.regional import measures_to_row, read_cat12_roi_xml, write_measures_tsv

pytestmark = pytest.mark.slow

#: Small and quick: 16^3 volumes, batches of 4, two epochs.
QUICK = dict(epochs=2, batch_size=4, volume_size=16, lr=1e-3)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from anatcl_nipype.data.cohort import make_cat12_cohort

    root = tmp_path_factory.mktemp("cohort")
    cohort = make_cat12_cohort(root, n_subjects=8, seed=3)
    rows = {subject: measures_to_row(read_cat12_roi_xml(cohort.roi_xml(subject)), ["Vgm"])
            for subject in cohort.subjects}
    write_measures_tsv(rows, root / "regional.tsv")
    return cohort


def participants_with_na(cohort, path, column, subject):
    """A copy of participants.tsv where ``subject``'s ``column`` is n/a."""
    with open(cohort.participants_tsv) as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    for row in rows:
        if row["participant_id"] == subject:
            row[column] = "n/a"
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), delimiter="\t",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_pretrain_then_finetune_in_a_workflow(cohort, tmp_path):
    maps = [str(path) for path in cohort.gm_maps]
    pretrain = Node(AnatCLPretrain(in_files=maps, regional_tsv=str(cohort.root / "regional.tsv"),
                                   atlas="synthetic", measures=["Vgm"], descriptor="local",
                                   participants_tsv=str(cohort.participants_tsv),
                                   age_sigma=10.0, **QUICK), name="pretrain")
    labels = participants_with_na(cohort, tmp_path / "participants.tsv", "diagnosis", "sub-03")
    finetune = Node(AnatCLFineTune(in_files=maps, participants_tsv=str(labels),
                                   target="diagnosis", freeze_encoder_epochs=1, **QUICK),
                    name="finetune")
    workflow = Workflow(name="training_wf", base_dir=str(tmp_path / "work"))
    workflow.config["execution"]["remove_unnecessary_outputs"] = False  # inspect them all
    workflow.connect(pretrain, "checkpoint", finetune, "init_weights")
    nodes = {node.name: node for node in workflow.run().nodes()}

    pretrained = nodes["pretrain"].result.outputs
    assert pretrained.participant_ids == list(cohort.subjects)
    assert len(open(pretrained.training_log).read().splitlines()) == 3
    assert open(pretrained.loss_curve).read().startswith("<?xml")
    sidecar = json.loads(open(pretrained.out_json).read())
    assert sidecar["checkpoint"]["sha256"] == sha256_file(pretrained.checkpoint)
    assert sidecar["descriptors"]["atlas"] == "synthetic"
    assert len(sidecar["descriptors"]["regions"]) == 34 and sidecar["descriptors"]["ages"] == "age"
    assert sidecar["settings"]["use_age"] is True and sidecar["settings"]["age_sigma"] == 10.0
    assert sidecar["inputs"]["sub-01"]["sha256"] == sha256_file(cohort.gm_maps[0])
    assert load_checkpoint(pretrained.checkpoint).epoch == 2

    tuned = nodes["finetune"].result.outputs
    assert "sub-03" not in tuned.participant_ids and len(tuned.participant_ids) == 7
    sidecar = json.loads(open(tuned.out_json).read())
    assert sidecar["labels"]["dropped"] == [{"participant_id": "sub-03",
                                             "reason": "diagnosis is n/a"}]
    assert sidecar["settings"]["init_weights_sha256"] == sha256_file(pretrained.checkpoint)
    assert sidecar["settings"]["classes"] == ["AD", "CN"]
    saved = torch.load(tuned.checkpoint, map_location="cpu", weights_only=False)
    assert saved["task_head"]["weight"].shape == (2, 512) and saved["epoch"] == 2
    assert open(tuned.loss_curve_png, "rb").read(4) == b"\x89PNG"


def test_pretrain_continues_a_run_in_out_dir_with_more_epochs(cohort, tmp_path):
    inputs = dict(in_files=[str(path) for path in cohort.gm_maps[:4]],
                  regional_tsv=str(cohort.root / "regional.tsv"), atlas="synthetic",
                  measures=["Vgm"], sigma=8.0, out_dir=str(tmp_path / "run"),
                  **{**QUICK, "epochs": 1})
    Node(AnatCLPretrain(**inputs), name="first", base_dir=str(tmp_path / "work")).run()
    second = Node(AnatCLPretrain(**{**inputs, "epochs": 2}), name="second",
                  base_dir=str(tmp_path / "work")).run().outputs
    assert second.checkpoint == str(tmp_path / "run" / "last.pth")
    sidecar = json.loads(open(second.out_json).read())
    assert sidecar["resumed_from_epoch"] == 1 and sidecar["epochs_completed"] == 2
    assert len(open(second.training_log).read().splitlines()) == 3


def test_pretrain_node_names_missing_ages_and_measures(cohort, tmp_path):
    maps = [str(path) for path in cohort.gm_maps[:4]]
    ages = participants_with_na(cohort, tmp_path / "participants.tsv", "age", "sub-02")
    node = Node(AnatCLPretrain(in_files=maps, regional_tsv=str(cohort.root / "regional.tsv"),
                               atlas="synthetic", measures=["Vgm"], participants_tsv=str(ages),
                               **QUICK), name="ages", base_dir=str(tmp_path / "work"))
    with pytest.raises(Exception, match=r"participants.tsv: no age for sub-02; fill it in"):
        node.run()
    node = Node(AnatCLPretrain(in_files=maps, regional_tsv=str(cohort.root / "regional.tsv"),
                               atlas="aparc_DK40", measures=["thickness"], **QUICK),
                name="atlas", base_dir=str(tmp_path / "work"))
    with pytest.raises(Exception, match=r"regional.tsv: no column aparc_DK40_<region>_thickness"):
        node.run()
