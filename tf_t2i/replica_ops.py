"""What one replica of a distributed train step needs from the others.

A distributed step splits each global batch into contiguous per-replica slices (replica r holds
rows [r * b, (r + 1) * b)). Terms that couple examples of a batch (the matching loss over all
pairs, wrong captions indexed into the global batch, the mode-seeking distances, the noise)
then read the other replicas through these functions, so that the step computes what one device
computes on the whole batch. Outside a strategy, or with one replica, every function returns its
input: the single-device step is plain code.

`gather` and `sum_over_replicas` are differentiable: the gradient of an all-gather sums the
upstream gradients of every replica and keeps this replica's slice; that of an all-reduce sums
them. Each replica differentiates its share (loss / replicas, see `gan._scaled`) of a loss that
every replica computes in full, and the optimizer sums the replicas' gradients: the result is the
gradient of the global loss.
"""
from __future__ import annotations

import tensorflow as tf


def _context():
    """The replica context of a step running on more than one replica, else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def replica_count() -> int:
    """Replicas the current step runs on (1 outside a distributed step)."""
    context = _context()
    return 1 if context is None else context.num_replicas_in_sync


def gather(values):
    """[replicas * b, ...]: every replica's `values` [b, ...], in replica order."""
    context = _context()
    return values if context is None else context.all_gather(values, axis=0)


def sum_over_replicas(value):
    """The sum of a tensor over the replicas (every replica gets the same sum)."""
    context = _context()
    return value if context is None else context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def local_rows(values, rows):
    """This replica's `rows` rows of `values` [replicas * rows, ...], drawn for all replicas."""
    context = _context()
    if context is None:
        return values
    start = tf.cast(context.replica_id_in_sync_group, tf.int32) * rows
    return values[start:start + rows]
