"""Registration: deposits, collars, surveys and samples from files or parsed records.

One service for the CLI (``mis register``) and the API's write endpoints::

    from mis.catalogue.register import register
    report = register(["deposits.yaml", "collars.csv", "surveys.csv", "samples.csv"])
    print(report.render())          # every finding, then what changed
    report.ok, report.changed       # no errors?  records added or changed

and its inverse, :func:`export`, which writes a deposit back to the same layout.
"""

from mis.catalogue.register.export import ExportResult, export
from mis.catalogue.register.service import Counts, RegistrationReport, read_inputs, register
from mis.catalogue.register.tables import Finding, Table, read_file
from mis.catalogue.register.validate import DEFAULT_DOGLEG_LIMIT

__all__ = [
    "DEFAULT_DOGLEG_LIMIT",
    "Counts",
    "ExportResult",
    "Finding",
    "RegistrationReport",
    "Table",
    "export",
    "read_file",
    "read_inputs",
    "register",
]
