"""The HTML report of an output folder, assembled with nireports from reportlets.

Everything here reads what an output folder holds (embeddings and their sidecars, CAT12
reports, ``failed.tsv``, group results, run records) and nothing else, so every level of
the command line can rewrite the report:

- :mod:`~anatcl_nipype.reports.run_record`: the ``run-<level>.json`` the command line writes;
- :mod:`~anatcl_nipype.reports.collect`: the folder's contents as plain data;
- :mod:`~anatcl_nipype.reports.qc`: automatic checks (map vs template prior, intensities,
  CAT12 IQR, embedding outliers);
- :mod:`~anatcl_nipype.reports.figures`: matplotlib figures (grey-matter panels, PCA,
  brain-age gap);
- :mod:`~anatcl_nipype.reports.methods`: the methods text and references;
- :mod:`~anatcl_nipype.reports.sections`: the registry of the report's sections and the
  group sections' fragments (:mod:`~anatcl_nipype.reports.studies`: the optional studies');
- :mod:`~anatcl_nipype.reports.assemble`: reportlets, the participants' panels and pages,
  and the nireports assembly.

This package imports nothing heavy at import time; the command line imports it lazily.
"""

#: Folder of the report, methods, graph, failures and run records inside an output folder.
REPORT_DIR = "anatcl"
