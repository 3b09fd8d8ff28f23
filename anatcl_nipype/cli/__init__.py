"""The ``anatcl-nipype`` command line (BIDS-App style), the demo and the report."""
