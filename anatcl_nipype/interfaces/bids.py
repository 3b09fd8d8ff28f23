"""BIDS-derivatives outputs: niworkflows' DerivativesDataSink taught AnatCL's file kinds.

>>> AnatCLDerivativesDataSink(desc="anatclGlobalFold0", suffix="embedding").inputs.desc
'anatclGlobalFold0'
"""

import json
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)
from niworkflows.interfaces.bids import DerivativesDataSink

import anatcl_nipype
from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import write_json_atomic

#: The kinds of file this package writes, as BIDS suffixes.
SUFFIXES = ("embedding", "regions", "features", "predictions", "metrics")


class AnatCLDerivativesDataSink(DerivativesDataSink):
    """Write ``sub-<label>[/ses-<label>]/anat/sub-<label>[_ses-<label>]..._desc-<desc>_<suffix>``.

    A :class:`niworkflows.interfaces.bids.DerivativesDataSink` whose naming patterns
    accept AnatCL's suffixes (``embedding``, ``regions``, ...) and extensions
    (``.npy``, ``.json``, ``.tsv``), writing straight into ``base_directory``.
    """

    out_path_base = ""
    _file_patterns = (
        "sub-{subject}[/ses-{session}]/{datatype<anat>|anat}/sub-{subject}[_ses-{session}]"
        "[_acq-{acquisition}][_ce-{ceagent}][_rec-{reconstruction}][_run-{run}]"
        f"[_space-{{space}}][_desc-{{desc}}]_{{suffix<{'|'.join(SUFFIXES)}>}}"
        "{extension<.npy|.json|.tsv>}",
    )


def dataset_description():
    """The ``dataset_description.json`` content of an anatcl-nipype derivatives folder."""
    return {
        "Name": "AnatCL embeddings and region-wise measures",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{
            "Name": "anatcl-nipype",
            "Version": anatcl_nipype.__version__,
            "Description": "AnatCL (Barbano et al., Pattern Recognition Letters 2026) as Nipype "
                           "interfaces, run on CAT12 grey-matter maps",
        }],
        "HowToAcknowledge": "Cite Barbano et al., 'Anatomical foundation models for brain MRIs', "
                            "Pattern Recognition Letters 199:178-184, 2026, "
                            "doi:10.1016/j.patrec.2025.11.028",
    }


class _DatasetDescriptionInputSpec(BaseInterfaceInputSpec):
    base_directory = Directory(mandatory=True, desc="the derivatives folder")
    trigger = traits.Any(desc="connect an output here to write after it")


class _DatasetDescriptionOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="dataset_description.json")


class DatasetDescription(SimpleInterface):
    """Write ``dataset_description.json`` (with ``GeneratedBy``) into a derivatives folder.

    Leaves an existing description from the same package alone; refuses to overwrite one
    that another tool wrote, so two pipelines never mix their outputs silently.
    """

    input_spec = _DatasetDescriptionInputSpec
    output_spec = _DatasetDescriptionOutputSpec

    def _run_interface(self, runtime):
        folder = Path(self.inputs.base_directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "dataset_description.json"
        if path.exists():
            existing = json.loads(path.read_text())
            names = {entry.get("Name") for entry in existing.get("GeneratedBy", [])}
            if "anatcl-nipype" not in names:
                raise AnatCLError(f"{path}: written by {sorted(names) or 'another tool'}; "
                                  "choose an empty output folder for anatcl-nipype")
        else:
            write_json_atomic(path, dataset_description())
        self._results["out_file"] = str(path)
        return runtime
