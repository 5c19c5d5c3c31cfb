"""Numba kernels, one module per model family. Importing this package registers every op.

Each family module defines, per op: a generic ``@njit(cache=True, nogil=True)`` kernel over
arrays, a plain NumPy reference implementation of the same semantics, and a binder that turns
a :class:`~scorer.ir.Step` into the kernel's arguments (registered with
:func:`scorer.ops.register_op`).
"""

from . import (  # noqa: F401  (imported for their registrations)
    calibration,
    clustering,
    encoding,
    linear,
    naive_bayes,
    nearest_neighbor,
    neural_network,
    predicate_tree,  # also registers 'expression', which it imports
    preprocessing,
    quantile,
    spline,
    svm,
    tree_ensemble,
)
