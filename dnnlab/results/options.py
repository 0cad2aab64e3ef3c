"""The values the results commands' options accept.

Plain constants, importing nothing: the command line builds its choices from them at import, so
`dnnlab --help` lists exactly what the library accepts without loading it.
"""

FORMATS = ("table", "csv", "json", "markdown")  # compare --format
DEFAULT_FORMAT = "table"  # for people; csv, json and markdown for other programs
