"""Every error tablescore raises on purpose, in one place.

Transports map these classes to their own status codes (gRPC, HTTP, CLI exit codes) in one
table each; nothing else in the code base decides a status code. Messages are written in the
user's terms: field names, expected versus received, the offending row.
"""

from __future__ import annotations


class TablescoreError(Exception):
    """Base class of all deliberate tablescore errors."""


# --- bundle / format -------------------------------------------------------------------------
class BundleError(TablescoreError):
    """A bundle cannot be read or written."""


class BundleFormatError(BundleError):
    """The bundle is malformed (missing file, bad JSON, a field of the wrong type)."""


class IncompatibleBundleError(BundleError):
    """The bundle needs a newer reader: unknown major schema version or unknown op version."""


class IntegrityError(BundleError):
    """A table or the manifest does not match its recorded hash."""


class VerificationError(BundleError):
    """The bundle's own verification rows do not reproduce: the parameters drifted."""


# --- export ----------------------------------------------------------------------------------
class ExportError(TablescoreError):
    """A fitted model cannot be turned into a bundle."""


class UnsupportedEstimatorError(ExportError):
    """No exporter is registered for this estimator class."""


# --- scoring input ---------------------------------------------------------------------------
class InputError(TablescoreError):
    """The caller's input does not match the model's input schema.

    Attributes
    ----------
    rows : ndarray of int64 or None
        Where known: every row (0-based in the call) refused for this same reason, so a
        caller isolating refused rows can set them all aside at once.
    row_reason : str or None
        With ``rows``: the reason as it reads for one of those rows alone.
    """

    rows = None
    row_reason = None


class MissingFieldError(InputError):
    """An input field the model needs was not supplied."""


class ShapeError(InputError):
    """Wrong number of rows or features."""


class FieldTypeError(InputError):
    """A field holds values of the wrong type."""


class MissingValueError(InputError):
    """A missing value reached a field that does not accept one."""


class UnknownCategoryError(InputError):
    """A category not seen in training reached an encoder that refuses unknown categories."""


# --- serving ---------------------------------------------------------------------------------
class ModelNotFoundError(TablescoreError):
    """Unknown model name or version."""


class EntityNotFoundError(TablescoreError):
    """A request's entity id has no stored features (or only ones older than the view's
    ``max_age``), and the model's feature binding refuses such requests."""


class FeatureViewNotFoundError(TablescoreError):
    """A model's feature binding names a view the store does not hold: the server's
    configuration (or the store's loading) is wrong, not the request (FAILED_PRECONDITION)."""


class FeatureDataError(TablescoreError):
    """The feature store holds something that does not follow its layout (a view's metadata,
    or a stored value or timestamp that is not one): the store's content is wrong, not the
    request; reloading the view fixes it (FAILED_PRECONDITION)."""


class NotReadyError(TablescoreError):
    """The server or model is not ready to score."""


class UnavailableError(TablescoreError):
    """A backend a pipeline stage needs (feature store, registry) cannot be reached; retrying
    later may succeed."""


class ResourceLimitError(TablescoreError):
    """A request is over a configured limit (message size, rows per request)."""
