"""Errors of the data layer: each message says what is wrong, where, and how to fix it."""


class DataError(Exception):
    """Base of every error the data layer raises on purpose."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """Dataset files are missing locally and no mirror could provide them."""


class CorruptFileError(DataError, ValueError):
    """A data file is truncated, malformed or not the expected file."""


class ChecksumError(CorruptFileError):
    """A file's SHA-256 differs from the published one."""
