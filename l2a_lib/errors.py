"""Every error the companion raises on purpose, in one place.

Each names what went wrong and the fix; ``python -m l2a_lib`` turns any of them
(:data:`USER_ERRORS`) into one line on stderr and exit code 2. The reliability page
provokes each one (``l2a_lib.reliability``).
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is out of range, of the wrong type, or unknown."""


class DataDirError(FileNotFoundError):
    """The data directory is missing or incomplete."""


class DataError(ValueError):
    """A data file is missing or malformed. The message names file, line and fix."""


class WeightsError(RuntimeError):
    """Pretrained weights cannot be found or assembled."""


class TokenizationMismatch(RuntimeError):
    """Teacher and student vocabularies do not align position by position."""


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch and step."""


class CorruptResult(ValueError):
    """A result file that is not a complete record (results are written atomically,
    so this only happens when a file is edited or copied by hand)."""


class MissingResults(LookupError):
    """A table asks for runs that are not in the result cache."""


class UnknownPage(ValueError):
    """A page name that is not in ``pages.PAGES``."""


class UnknownJob(ValueError):
    """A run hash, teacher key or masked-LM key that no page of the profile uses."""


class BookCheckUnavailable(RuntimeError):
    """The built book cannot be checked: no built book, no Chromium or no Playwright."""


# what the command line reports as one line (a user's input or set-up is wrong)
USER_ERRORS = (ConfigError, DataDirError, DataError, WeightsError, UnknownPage, UnknownJob,
               BookCheckUnavailable)
