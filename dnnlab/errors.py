"""The errors a user can cause. The CLI prints them as one line and exits 2 (1 for a refused write)."""

from __future__ import annotations


class DnnlabError(Exception):
    """Bad input: a spec, a file, a run directory or an argument the user gave."""

    exit_code = 2


class ConfigError(DnnlabError):
    """The YAML spec or an override is invalid."""


class DataError(DnnlabError):
    """A dataset cannot be found, read or filtered as the spec asks."""


class RunDirError(DnnlabError):
    """A path is not a usable run directory (missing, not a run, edited since)."""


class PredictError(DnnlabError):
    """A model, input or option that MC dropout prediction cannot use."""


class ModelFileError(DnnlabError):
    """A `.keras` file Keras refuses to load: damaged, truncated, not a model, or unsafe."""


class WriteError(DnnlabError):
    """The disk refused a write (full, read-only, no permission): not a bug, but not bad input
    either, so one line and exit 1; the message names the file and the reason."""

    exit_code = 1

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message

    @classmethod
    def of(cls, path, error: OSError) -> WriteError:
        reason = error.strerror or str(error)
        return cls(f"{path}: cannot write ({reason})", reason)
