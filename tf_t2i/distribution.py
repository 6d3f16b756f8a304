"""`train.strategy`: the tf.distribute strategy of a run, its chief, and each worker's input.

    default      one device (TensorFlow's default strategy)
    mirrored     every local GPU, or every logical CPU device where there is no GPU
    multiworker  MultiWorkerMirroredStrategy over the cluster in the TF_CONFIG environment
                 variable; every worker runs the same command with the same --out on a shared disk

Every worker trains (a custom loop: `strategy.run` inside a `tf.function`, `stage_loop`). Only the
chief writes into the run folder (config, samples, logs, checkpoints, export); the other workers
write their logs and checkpoints to a temporary folder, deleted at the end, because saving reads
metric variables, which is a collective every worker must join (TensorFlow's rule: all save).

The global batch of `data.batch_size` is cut into contiguous per-replica slices: worker w keeps
its rows of each global batch (the dataset is sharded per worker), and hands them to its local
replicas in order, so replica r holds rows [r * b, (r + 1) * b) (`replica_ops` relies on it).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

import tensorflow as tf

from tf_t2i.errors import UserInputError


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy `train.strategy` names.

    Create it before anything else touches TensorFlow: MultiWorkerMirroredStrategy configures
    collective ops, which must happen before the runtime starts.
    """
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _check_tf_config():
    """Raises UserInputError (one sentence) unless TF_CONFIG describes this worker's cluster."""
    text = os.environ.get("TF_CONFIG", "")
    hint = ('set TF_CONFIG on every worker, e.g. {"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    if not text:
        raise UserInputError(f"--strategy multiworker needs the TF_CONFIG environment variable: "
                             f"{hint} (or pass another --strategy).")
    try:
        tf_config = json.loads(text)
        task = tf_config["task"]
        addresses = tf_config["cluster"][task["type"]]
        addresses[task["index"]]
    except (ValueError, KeyError, IndexError, TypeError):
        raise UserInputError(f"TF_CONFIG={text!r} does not name a cluster and this worker's "
                             f"task in it: {hint}.") from None


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes the run folder: the "chief" task, or worker 0 of a
    cluster without one; always true outside multi-worker training."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


@contextlib.contextmanager
def work_folder(run_dir: str, strategy: tf.distribute.Strategy):
    """Where this process writes logs and checkpoints: the run folder on the chief, a temporary
    folder (removed on exit) on the other workers."""
    if is_chief(strategy):
        yield run_dir
        return
    resolver = strategy.cluster_resolver
    folder = tempfile.mkdtemp(prefix=f"tf_t2i-{resolver.task_type}-{resolver.task_id}-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_batch_size(strategy: tf.distribute.Strategy, batch_size: int, pairs: bool):
    """Raises UserInputError unless the global batch splits evenly over the replicas.

    Args:
        batch_size: the global batch (`data.batch_size`).
        pairs: GAN-INT or the mode-seeking term is on: they pair adjacent examples, which must
            lie on the same replica, so each replica's batch must also be even.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return
    multiple = 2 * replicas if pairs else replicas
    if batch_size % multiple:
        why = (" (GAN-INT and the mode-seeking term pair adjacent examples on each replica)"
               if pairs else "")
        raise UserInputError(
            f"data.batch_size={batch_size} does not split into even per-replica batches over "
            f"{replicas} replicas{why}: use a multiple of {multiple}.")


def distribute(strategy: tf.distribute.Strategy, make_dataset, batch_size: int):
    """The per-replica stream of a dataset of global batches.

    Args:
        make_dataset: () -> a dataset of global batches (dicts of [batch_size, ...] tensors);
            called once per worker, on that worker.
        batch_size: the global batch size.

    Returns:
        The dataset itself on one replica; otherwise a distributed dataset whose replica r
        receives rows [r * b, (r + 1) * b) of each global batch, b = batch_size / replicas.
    """
    if strategy.num_replicas_in_sync == 1:
        return make_dataset()

    def worker_stream(context: tf.distribute.InputContext):
        per_replica = context.get_per_replica_batch_size(batch_size)
        per_worker = batch_size // context.num_input_pipelines
        first = context.input_pipeline_id * per_worker
        # Rows of the global batch, cut after the wrong captions were chosen across all of it.
        shard = make_dataset().map(
            lambda batch: {key: value[first:first + per_worker] for key, value in batch.items()})
        # Consecutive elements go to the worker's replicas in order.
        return shard.unbatch().batch(per_replica, drop_remainder=True).prefetch(
            tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(worker_stream)


def with_static_batch(step_fn, strategy: tf.distribute.Strategy, batch_size: int):
    """`step_fn` on batches whose leading dimension is the per-replica batch, statically.

    MultiWorkerMirroredStrategy fetches batches as optionals (workers may run out of data at
    different times), which leaves their batch dimension unknown; the step needs it static.
    """
    if strategy.num_replicas_in_sync == 1:
        return step_fn
    rows = batch_size // strategy.num_replicas_in_sync

    def step(batch):
        return step_fn({key: tf.ensure_shape(value, [rows] + value.shape[1:])
                        for key, value in batch.items()})

    return step
