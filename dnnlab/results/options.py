"""The values the results commands' options accept.

Plain constants, importing nothing: the command line builds its choices from them at import, so
`dnnlab --help` lists exactly what the library accepts without loading it.
"""

FORMATS = ("table", "csv", "json", "markdown")  # compare --format
DEFAULT_FORMAT = "table"  # for people; csv, json and markdown for other programs
CI_CHOICES = {"t": "t", "bootstrap": "bca"}  # compare --ci: Student's t, or scipy's BCa bootstrap
AT_CHOICES = ("best", "final")  # compare --at: each run's best epoch of the metric, or its last epoch
