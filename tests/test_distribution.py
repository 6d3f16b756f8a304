"""tf.distribute: `mirrored` on two logical CPU devices and `multiworker` on two local processes
train exactly what one device trains on the same global batch.

Every strategy runs in a subprocess: a second strategy in one process is flaky, and logical CPU
devices and collective ops must be configured before TensorFlow starts. The runs turn on
`train.sync_batch_norm` (else each replica normalises with its own slice's statistics, which
one device cannot reproduce) and keep GAN-INT and the mode-seeking term on: every term that
couples examples of a batch is then computed as one device computes it (`tf_t2i.replica_ops`).
"""
import dataclasses
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tf_t2i.config import get_preset
from tf_t2i.gan import METRIC_NAMES, STYLE_METRIC_NAMES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = get_preset("tiny")
STEPS = 3
# GAN-INT (on in every preset) and the mode-seeking term both on, BatchNorm synchronised.
OVERRIDES = {"sync_batch_norm": True, "mode_seeking_weight": 1.0, "steps": STEPS,
             "style_steps": 2, "steps_per_execution": 2, "log_every": 100,
             "checkpoint_every": 100, "sample_every": 100, "precision": "float32"}


def tiny_config(model=None, **train):
    """`TINY` with OVERRIDES and `train` in its train section and `model` (a dict) in its
    model section."""
    return dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, **(model or {})),
                               train=dataclasses.replace(TINY.train, **{**OVERRIDES, **train}))


def run_python(code, *args, env=None, timeout=600):
    """Runs `code` in a fresh Python in the repository; returns the completed process."""
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# ---------------------------------------------------------------------------------------------
# Run in the subprocesses


def use_logical_cpus(count):
    """Splits the CPU into `count` logical devices; must run before TensorFlow starts."""
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()]
                                               * count)


def save_variables(gan, strategy, out_path, metrics=None):
    """Saves every variable of `gan` and its optimizers (each replica's copy, `@<replica>`) and
    `metrics` to `out_path` (.npz)."""
    arrays = {f"metric:{name}": np.float32(value) for name, value in (metrics or {}).items()}
    optimizers = [getattr(gan, name) for name in ("encoder_optimizer", "d_optimizer",
                                                  "g_optimizer", "style_optimizer")]
    for variable in gan.variables + [v for o in optimizers for v in o.variables]:
        copies = strategy.experimental_local_results(variable.value)
        for index, copy in enumerate(copies):
            arrays[f"{variable.path}@{index}"] = copy.numpy()
    np.savez(out_path, **arrays)


def train_in_process(strategy_name, out_path, work_dir, train_json="{}"):
    """Trains the GAN and style stages of `tiny_config` (with the train fields of `train_json`)
    under a strategy through StageLoop (the loop of train.py), then saves every variable and the
    last logged metrics (read across replicas) to `out_path`."""
    import keras

    from tf_t2i import distribution
    from tf_t2i.data.attribute_words import attribute_words
    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.data.load_dataset import load_dataset
    from tf_t2i.data.pipeline import make_train_dataset
    from tf_t2i.runs import build_gan
    from tf_t2i.stage_loop import StageLoop

    config = tiny_config(strategy=strategy_name, **json.loads(train_json))
    strategy = distribution.make_strategy(strategy_name)
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    dataset = load_dataset(config.data)
    words = attribute_words(dataset.train, config.data) if config.train.hard_negatives else None
    with strategy.scope():
        gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=10)

    def stream(embed_captions=None):
        # As train.py: a stage whose text encoder does not train gets the pipeline's
        # embeddings, computed once inside the strategy's dataset function.
        return distribution.distribute(
            strategy, lambda: make_train_dataset(dataset.train, config.data, encoder,
                                                 embed_captions=embed_captions,
                                                 attribute_words=words),
            config.data.batch_size)

    loop = StageLoop(config, work_dir, gan, None, None, strategy=strategy)
    logged = {}
    log = loop._log
    loop._log = lambda *args: logged.update(log(*args)) or logged
    record = {"stage": "gan", "step": 0, "style_step": 0}
    record = loop.run("gan", gan.train_step, gan.trackers,
                      stream(None if gan.train_encoders else gan.embed_caption_table), record,
                      STEPS)
    loop.run("style", gan.style_step, gan.style_trackers, stream(gan.embed_caption_table),
             record, config.train.style_steps)
    save_variables(gan, strategy, out_path, logged)


def train_cli(out_path, *argv):
    """Runs train.py's main with `argv`, then saves every variable of the model it trained."""
    import tensorflow as tf

    from tf_t2i import training
    from tf_t2i.cli.train import main

    built = []
    build_gan = training.build_gan
    training.build_gan = lambda *args, **kwargs: (built.append(build_gan(*args, **kwargs))
                                                  or built[-1])
    try:
        main(list(argv))
    except SystemExit as error:
        assert error.code == 0, error.code
    save_variables(built[0], tf.distribute.get_strategy(), out_path)


# ---------------------------------------------------------------------------------------------
# Tests


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def load_arrays(path):
    with np.load(path) as arrays:
        return dict(arrays)


def assert_same_training(actual, expected):
    """Every variable and metric of `expected` is in `actual` within float32 round-off.

    Each array is compared against its own scale, |a - e| <= tolerance * max|e|, since sums
    over replicas add in another order than on one device. The GAN stage agrees to ~3e-5 of
    scale. The style stage gets 1e-2: after three GAN steps the fakes it sees are so uniform
    that its BatchNorm's batch variance (~1e-8) is below epsilon (1e-5) and the normalised
    features are differences of nearly equal numbers, so the first style convolution's gradient
    moves by ~0.5% with the order of the sums (one device run twice agrees exactly).
    """
    assert set(actual) >= set(expected)
    for name, value in expected.items():
        style = name.startswith(("style_encoder/", "style_optimizer/", "metric:style"))
        tolerance = 1e-2 if style else 1e-3
        scale = max(float(np.abs(value).max()) if value.size else 0.0, 1e-3)
        np.testing.assert_allclose(actual[name], value, rtol=0, atol=tolerance * scale,
                                   err_msg=name)
    assert len(expected) > 200


def single_copies(arrays):
    """The replica-0 copy of every variable, named without the replica suffix."""
    return {name.rsplit("@", 1)[0]: value for name, value in arrays.items()
            if name.endswith("@0") or name.startswith("metric:")}


@pytest.mark.slow
def test_mirrored_on_two_cpus_matches_one_device(tmp_path):
    """Three GAN steps (two compiled calls) and two style steps, GAN-INT, mode-seeking and
    synchronised BatchNorm on: both replicas end with the same weights, equal to one device's up
    to round-off (`assert_same_training_up_to_round_off`).

    Every variable, optimizer slots included, has a copy on each replica: models and optimizers
    were created and built inside the strategy's scope (keras-team/keras#23085).
    """
    one, two = train_on_one_device_and_two_cpus(tmp_path)
    replica_1 = {name: value for name, value in two.items() if name.endswith("@1")}
    assert len(replica_1) == sum(name.endswith("@0") for name in two) > 200
    for name, value in replica_1.items():
        np.testing.assert_array_equal(value, two[name[:-2] + "@0"], err_msg=name)
    assert set(one) == {n for n in two if not n.endswith("@1")}
    # The metrics the loop logged (read across replicas) are there and agree too.
    assert {n for n in one if n.startswith("metric:")} == {
        f"metric:{name}" for name in METRIC_NAMES + STYLE_METRIC_NAMES}
    assert_same_training_up_to_round_off(
        single_copies(two), single_copies(one),
        single_copies(train_on_one_device_in_another_order(tmp_path)))


TRAIN_IN_PROCESS = ("import sys, tests.test_distribution as t\n"
                    "if sys.argv[1] == 'mirrored': t.use_logical_cpus(2)\n"
                    "t.train_in_process(*sys.argv[1:])\n")


def train_on_one_device_and_two_cpus(tmp_path, **train):
    """Trains `tiny_config(**train)` on one device and on two logical CPUs (Mirrored); returns
    the variables of each run (`save_variables`)."""
    for name in ("default", "mirrored"):
        run_python(TRAIN_IN_PROCESS, name, str(tmp_path / f"{name}.npz"), str(tmp_path / name),
                   json.dumps(train))
    return load_arrays(tmp_path / "default.npz"), load_arrays(tmp_path / "mirrored.npz")


def reordered_env():
    """This process's environment with oneDNN's kernels off: TensorFlow's own kernels then sum
    in another order (the same maths, other round-off)."""
    return dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0")


def train_on_one_device_in_another_order(tmp_path, **train):
    """The one-device run again with oneDNN's kernels off (TF_ENABLE_ONEDNN_OPTS=0): the same
    maths, its floating-point sums taken in another order; returns its variables."""
    run_python(TRAIN_IN_PROCESS, "default", str(tmp_path / "reordered.npz"),
               str(tmp_path / "reordered"), json.dumps(train), env=reordered_env())
    return load_arrays(tmp_path / "reordered.npz")


def assert_same_training_up_to_round_off(actual, expected, reordered, slack=10.0):
    """Every array of `actual` is as close to `expected` as round-off allows.

    A few GAN steps amplify round-off: Adam moves every weight by about the learning rate
    whatever its gradient's size, so where a gradient is near zero its rounding decides the
    step, and G, D and the encoders feed each other's errors back. So each array may differ
    from `expected` by `slack` times what the same run with its sums in another order
    (`reordered`, one device) differs by, or by `assert_same_training`'s tolerance if that is
    larger. A wrong term (a loss not divided by the global batch, noise or BatchNorm statistics
    of the replica instead of the batch) moves arrays far more than reordering does.
    """
    assert set(actual) >= set(expected) and set(reordered) == set(expected)
    for name, value in expected.items():
        style = name.startswith(("style_encoder/", "style_optimizer/", "metric:style"))
        scale = max(float(np.abs(value).max()) if value.size else 0.0, 1e-3)
        floor = float(np.abs(reordered[name] - value).max()) if value.size else 0.0
        allowed = max((1e-2 if style else 1e-3) * scale, slack * floor)
        np.testing.assert_allclose(actual[name], value, rtol=0, atol=allowed, err_msg=name)
    assert len(expected) > 200


@pytest.mark.slow
def test_mirrored_with_the_quality_options_on_matches_one_device(tmp_path):
    """Hinge loss, MA-GP, DiffAugment translation and the EMA generator under MirroredStrategy:
    each replica's copy of the average is updated from its own copy of G (cross-replica
    update), and every variable, the average included, equals one device's."""
    options = dict(gan_loss="hinge", gradient_penalty_weight=2.0, diff_augment="translation",
                   ema_decay=0.5)
    one, two = train_on_one_device_and_two_cpus(tmp_path, **options)
    averages = [name for name in two if name.startswith("ema_generator/")]
    assert averages and all(name.rsplit("@", 1)[0] + "@0" in two for name in averages)
    for name in (n for n in averages if n.endswith("@1")):
        np.testing.assert_array_equal(two[name], two[name[:-2] + "@0"], err_msg=name)
    # The average is not G (variables in the same order in both models).
    generator = [two[n] for n in two if n.startswith("generator/") and n.endswith("@0")]
    average = [two[n] for n in averages if n.endswith("@0")]
    assert len(generator) == len(average)
    assert any(not np.array_equal(a, g) for a, g in zip(average, generator))
    assert_same_training_up_to_round_off(
        single_copies(two), single_copies(one), single_copies(
            train_on_one_device_in_another_order(tmp_path, **options)))


@pytest.mark.slow
def test_mirrored_with_frozen_encoders_matches_one_device(tmp_path):
    """Frozen encoders (the default preset's GAN stage): both stages read the embeddings the
    pipeline computed once in the strategy's dataset function; both replicas end alike, and
    equal to one device up to round-off. With shared fakes (each replica's D step trains on
    its own G step's fakes), the hard negative check (each replica checks its own rows) and the
    recombined texts (every other row of each replica's, the rows one device draws)."""
    options = dict(encoder_warmup_steps=1, freeze_encoders=True, shared_fakes=True,
                   hard_negative_check_weight=1.0, recombined_text_weight=1.0)
    one, two = train_on_one_device_and_two_cpus(tmp_path, **options)
    for name in (n for n in two if n.endswith("@1")):
        np.testing.assert_array_equal(two[name], two[name[:-2] + "@0"], err_msg=name)
    assert_same_training_up_to_round_off(
        single_copies(two), single_copies(one), single_copies(
            train_on_one_device_in_another_order(tmp_path, **options)))


@pytest.mark.slow
def test_mirrored_with_text_slots_and_attention_matches_one_device(tmp_path):
    """Competing local text slots (their BatchNorm over [batch, positions, units], synchronised)
    and per-pixel attention over text tokens in G, encoders training: both replicas end alike,
    and equal to one device up to round-off."""
    options = dict(model=dict(generator_conditioning="attention", text_tokens=4, text_slots=4,
                              text_slot_values="local", text_slot_softmax="slots",
                              text_batch_norm=True))
    one, two = train_on_one_device_and_two_cpus(tmp_path, **options)
    assert any("slot_queries" in name for name in one)
    for name in (n for n in two if n.endswith("@1")):
        np.testing.assert_array_equal(two[name], two[name[:-2] + "@0"], err_msg=name)
    assert_same_training_up_to_round_off(
        single_copies(two), single_copies(one), single_copies(
            train_on_one_device_in_another_order(tmp_path, **options)))


def cli_overrides(**train):
    """--set flags of OVERRIDES (plus `train`) for train.py."""
    values = {**OVERRIDES, **train}
    return [flag for name, value in values.items()
            for flag in ("--set", f"train.{name}={str(value).lower()}")]


TRAIN_CLI = "import sys, tests.test_distribution as t\nt.train_cli(*sys.argv[1:])\n"


@pytest.mark.slow
def test_two_workers_train_like_one_device_and_the_chiefs_checkpoint_resumes(tmp_path):
    """`train.py --strategy multiworker --out RUN` on two local workers (TF_CONFIG, free ports):
    both end with identical weights, equal to a one-device run of the same global batch; only
    the chief wrote into RUN; the chief's checkpoint resumes."""
    run_dir = str(tmp_path / "run")
    argv = ["--preset", "tiny", "--out", run_dir, "--strategy", "multiworker",
            *cli_overrides(checkpoint_every=2, sample_every=2)]
    cluster = [f"localhost:{port}" for port in free_ports(2)]
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}))
        workers.append(subprocess.Popen(
            [sys.executable, "-c", TRAIN_CLI, str(tmp_path / f"worker{index}.npz"), *argv],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [worker.communicate(timeout=900)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]

    chief, other = (load_arrays(tmp_path / f"worker{index}.npz") for index in range(2))
    assert sorted(chief) == sorted(other) and len(chief) > 200
    for name, value in chief.items():
        np.testing.assert_array_equal(other[name], value, err_msg=name)

    # Only the chief wrote the run folder: one config, its checkpoints, samples, curves and
    # export.
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["train"]["strategy"] == "multiworker"
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "config.json", "curves.png", "export",
                                           "logs", "samples"]
    assert sorted(os.listdir(os.path.join(run_dir, "samples"))) == [
        "step-00000002.png", "step-00000003.png"]
    assert "exported the SavedModel" in outputs[0]
    assert "exported the SavedModel" not in outputs[1]

    # The same global batches on one device give the same weights, up to round-off.
    for name, env in (("single", None), ("reordered", reordered_env())):
        run_python(TRAIN_CLI, str(tmp_path / f"{name}.npz"), *[
            str(tmp_path / name) if value == run_dir else "default" if value == "multiworker"
            else value for value in argv], env=env)
    assert_same_training_up_to_round_off(
        single_copies(chief), *(single_copies(load_arrays(tmp_path / f"{name}.npz"))
                                for name in ("single", "reordered")))

    # The chief's checkpoint resumes (here on one device) and training goes on.
    resumed = run_python(TRAIN_CLI, str(tmp_path / "resumed.npz"), "--resume", run_dir,
                         "--strategy", "default", "--steps", str(STEPS + 2))
    assert f"resuming from style step {OVERRIDES['style_steps']}" in resumed.stdout
    with open(os.path.join(run_dir, "checkpoints", "latest.json"), encoding="utf-8") as f:
        assert json.load(f)["step"] == STEPS + 2


# ---------------------------------------------------------------------------------------------
# Fast: the pieces, on two logical CPU devices


def mirrored_pieces(pieces_path, norm_path):
    """`replica_pieces` and `synchronized_norm_pieces` under one MirroredStrategy on two logical
    CPUs (one TensorFlow start for both tests; a second strategy in a process is flaky)."""
    use_logical_cpus(2)
    from tf_t2i import distribution

    strategy = distribution.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    replica_pieces(pieces_path, strategy)
    synchronized_norm_pieces(norm_path, strategy)


def replica_pieces(out_path, strategy):
    """Under `strategy`, records what each replica gets from `distribution.distribute`,
    `TextToImageGAN._draw`, `replica_ops` and their gradients."""
    import keras
    import tensorflow as tf

    from tf_t2i import distribution, losses, replica_ops
    from tf_t2i.gan import TextToImageGAN

    rows = tf.data.Dataset.range(3).map(lambda i: {
        "rows": tf.range(8) + 8 * tf.cast(i, tf.int32),
        "wrong_indices": 7 - tf.range(8)})
    stream = iter(distribution.distribute(strategy, lambda: rows, batch_size=8))
    with strategy.scope():
        noise_source = types_namespace(seed_generator=keras.random.SeedGenerator(5))
        weights = tf.Variable(np.arange(1, 9, dtype=np.float32).reshape(4, 2))
    z_a, z_b = tf.constant(np.eye(4, 2, dtype=np.float32)), tf.zeros((4, 2))

    def step(batch):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        with tf.GradientTape() as tape:
            local = tf.gather(weights, 2 * replica + tf.range(2))
            gathered = replica_ops.gather(local)
            gather_loss = tf.reduce_sum(gathered * [[1.0], [10.0], [100.0], [1000.0]])
            images = tf.reshape(local, (2, 1, 1, 2))
            mode_seeking = losses.mode_seeking_loss(
                images, tf.zeros_like(images), replica_ops.local_rows(z_a, 2),
                replica_ops.local_rows(z_b, 2),
                sum_over_replicas=replica_ops.sum_over_replicas)
            # Each replica differentiates its share of losses every replica computes in full.
            share = (gather_loss + mode_seeking) / replica_ops.replica_count()
        return {"rows": batch["rows"], "wrong_indices": batch["wrong_indices"],
                "noise": TextToImageGAN._draw(noise_source, keras.random.normal, 3, 2),
                "gradient": tf.convert_to_tensor(tape.gradient(share, weights)),
                "gathered": gathered,
                "mode_seeking": mode_seeking}

    outputs = [strategy.run(tf.function(step), args=(next(stream),)) for _ in range(2)]
    arrays = {}
    for call, output in enumerate(outputs):
        for key, value in output.items():
            for replica, copy in enumerate(strategy.experimental_local_results(value)):
                arrays[f"{key}/{call}/{replica}"] = copy.numpy()
    arrays["noise_state"] = noise_source.seed_generator.state.numpy()
    np.savez(out_path, **arrays)


def types_namespace(**attributes):
    import types
    return types.SimpleNamespace(**attributes)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """(replica_pieces' arrays, synchronized_norm_pieces' arrays), from one subprocess."""
    folder = tmp_path_factory.mktemp("mirrored")
    run_python("import sys, tests.test_distribution as t\nt.mirrored_pieces(*sys.argv[1:])\n",
               str(folder / "pieces.npz"), str(folder / "norm.npz"))
    return load_arrays(folder / "pieces.npz"), load_arrays(folder / "norm.npz")


def test_replicas_split_the_global_batch_and_compute_one_devices_terms(mirrored):
    """Replica r gets rows [4r, 4r + 4) of each global batch of 8; each replica's noise is its
    rows of the draw one device makes; gathering and summing over replicas is differentiable,
    and the summed replica shares give the gradient of the global loss."""
    arrays = mirrored[0]
    import keras
    import tensorflow as tf

    from tf_t2i import losses

    single = keras.random.SeedGenerator(5)
    for call in range(2):
        expected_noise = keras.random.normal((6, 2), seed=single).numpy()
        for replica in range(2):
            got = {key: arrays[f"{key}/{call}/{replica}"] for key in
                   ("rows", "wrong_indices", "noise", "gradient", "gathered", "mode_seeking")}
            first = 4 * replica
            np.testing.assert_array_equal(got["rows"], 8 * call + first + np.arange(4))
            # Indices into the global batch pass through unchanged.
            np.testing.assert_array_equal(got["wrong_indices"], 7 - first - np.arange(4))
            np.testing.assert_array_equal(got["noise"], expected_noise[3 * replica:][:3])
            assert not np.allclose(got["noise"], arrays[f"noise/{call}/{1 - replica}"])
            np.testing.assert_array_equal(got["gathered"], np.arange(1, 9).reshape(4, 2))
            # One device: the same losses on the whole batch, differentiated once.
            weights = tf.Variable(np.arange(1, 9, dtype=np.float32).reshape(4, 2))
            with tf.GradientTape() as tape:
                images = tf.reshape(weights, (4, 1, 1, 2))
                mode_seeking = losses.mode_seeking_loss(
                    images, tf.zeros_like(images), np.eye(4, 2, dtype=np.float32),
                    np.zeros((4, 2), np.float32))
                loss = tf.reduce_sum(weights * [[1.0], [10.0], [100.0], [1000.0]]) + mode_seeking
            assert got["mode_seeking"] == pytest.approx(float(mode_seeking), rel=1e-6)
            # The optimizer sums the replicas' gradients.
            total = arrays[f"gradient/{call}/0"] + arrays[f"gradient/{call}/1"]
            np.testing.assert_allclose(total, tape.gradient(loss, weights).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(arrays["noise_state"], single.state.numpy())


def synchronized_norm_pieces(out_path, strategy):
    """Under `strategy` (two replicas), normalises 4 rows per replica with
    `SynchronizedBatchNormalization` and records each replica's output and input gradient."""
    import tensorflow as tf

    from tf_t2i import distribution, replica_ops

    stream = iter(distribution.distribute(
        strategy, lambda: tf.data.Dataset.from_tensors({"x": norm_inputs()}), batch_size=8))
    with strategy.scope():
        layer = synchronized_norm_layer()
        layer.build((None, 2))

    def step(batch):
        with tf.GradientTape() as tape:
            tape.watch(batch["x"])
            out = layer(batch["x"], training=True)
            # The sum over this replica's rows: its share of the global loss, a sum over rows.
            weights = replica_ops.local_rows(tf.constant(norm_loss_weights()), 4)
            share = tf.reduce_sum(out * weights)
        return out, tape.gradient(share, batch["x"])

    out, gradient = strategy.run(tf.function(step), args=(next(stream),))
    np.savez(out_path, out=np.concatenate(
        [v.numpy() for v in strategy.experimental_local_results(out)]), gradient=np.concatenate(
        [v.numpy() for v in strategy.experimental_local_results(gradient)]))


def norm_inputs():
    """[8, 2] float32: a mean of 10, a spread of 0.03."""
    column = 10.0 + 0.013 * np.arange(8)
    return np.stack([column, -column[::-1]], axis=1).astype(np.float32)


def norm_loss_weights():
    return np.linspace(-1.0, 2.0, 16, dtype=np.float32).reshape(8, 2)


def synchronized_norm_layer():
    from tf_t2i.models.synchronized_batch_norm import SynchronizedBatchNormalization
    return SynchronizedBatchNormalization(epsilon=1e-5, gamma_initializer="ones")


def test_synchronized_batch_norm_on_two_replicas_is_one_devices_normalisation(mirrored):
    """Mean 10, spread 0.03: sum(x^2) / n - mean^2 in float32 (Keras' synchronized
    BatchNorm) is 0.25% off the variance, two passes are not. Both replicas' rows, and the gradients the
    replicas' shares give, equal the hand-computed global normalisation and one device's."""
    got = mirrored[1]
    import tensorflow as tf

    x = norm_inputs()
    exact = x.astype(np.float64)
    centred = exact - exact.mean(axis=0)
    expected = centred / np.sqrt((centred ** 2).mean(axis=0) + 1e-5)
    np.testing.assert_allclose(got["out"], expected, rtol=0, atol=1e-4)
    layer, inputs = synchronized_norm_layer(), tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = layer(inputs, training=True)
        loss = tf.reduce_sum(out * norm_loss_weights())
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-4)
    # Keras applies x * inv + (beta - mean * inv): the gradient of inv sums dy * x and
    # mean * dy, terms ~30 whose difference is ~0.05, so it carries float32 round-off of ~1e-3.
    np.testing.assert_allclose(got["gradient"], tape.gradient(loss, inputs).numpy(),
                               rtol=0, atol=5e-3)


# ---------------------------------------------------------------------------------------------
# Fast, in this process (no strategy is created)


def test_the_global_batch_must_split_into_even_replica_batches():
    from tf_t2i.distribution import check_batch_size
    from tf_t2i.errors import UserInputError

    four = types_namespace(num_replicas_in_sync=4)
    check_batch_size(four, 16, pairs=True)
    check_batch_size(four, 12, pairs=False)
    check_batch_size(types_namespace(num_replicas_in_sync=1), 7, pairs=True)
    with pytest.raises(UserInputError, match=r"^data.batch_size=12 does not split into even "
                                             r"per-replica batches over 4 replicas \(GAN-INT .*"
                                             r"use a multiple of 8\.$"):
        check_batch_size(four, 12, pairs=True)
    with pytest.raises(UserInputError, match=r"over 4 replicas: use a multiple of 4\.$"):
        check_batch_size(four, 10, pairs=False)


def test_the_chief_is_the_chief_task_or_else_worker_0():
    import tensorflow as tf

    from tf_t2i.distribution import is_chief

    def strategy(cluster, task_type, task_id):
        return types_namespace(cluster_resolver=tf.distribute.cluster_resolver.
                               SimpleClusterResolver(tf.train.ClusterSpec(cluster),
                                                     task_type=task_type, task_id=task_id))

    workers = {"worker": ["localhost:1", "localhost:2"]}
    assert is_chief(strategy(workers, "worker", 0))
    assert not is_chief(strategy(workers, "worker", 1))
    with_chief = {"chief": ["localhost:3"], **workers}
    assert is_chief(strategy(with_chief, "chief", 0))
    assert not is_chief(strategy(with_chief, "worker", 0))
    assert is_chief(types_namespace())  # default and mirrored: one process


@pytest.mark.parametrize("tf_config, fragment", [
    (None, "--strategy multiworker needs the TF_CONFIG environment variable: set TF_CONFIG"),
    ("{not json", "does not name a cluster and this worker's task in it"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}',
     "does not name a cluster and this worker's task in it"),
])
def test_multiworker_without_a_usable_tf_config_is_one_error_line(tmp_path, capsys, monkeypatch,
                                                                  tf_config, fragment):
    from tests.test_train_cli import run_train

    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    code, out, err = run_train(capsys, "--preset", "tiny", "--strategy", "multiworker",
                               "--out", tmp_path / "run")
    assert code == 2 and "\n" not in err.strip() and fragment in err, err
    assert not os.path.exists(tmp_path / "run")


def test_strategy_flag_sets_the_config_and_multiworker_needs_out(capsys):
    from tests.test_train_cli import dry_run, run_train

    config, _ = dry_run(capsys, "--preset", "tiny", "--strategy", "mirrored")
    assert config["train"]["strategy"] == "mirrored"
    code, out, err = run_train(capsys, "--preset", "tiny", "--strategy", "multiworker")
    assert (code, out) == (2, "")
    assert err == ("error: --strategy multiworker needs --out RUN (or --resume RUN): the same "
                   "folder on a disk every worker shares.\n")


@pytest.mark.slow
def test_a_one_device_run_resumed_under_mirrored_ends_like_the_uninterrupted_run(tmp_path):
    """Two GAN steps on one device, then `--resume` with `--strategy mirrored` on two logical
    CPUs for the last GAN step and the style stage: the weights equal a one-device run of all
    steps at once, up to round-off."""
    argv = ["--preset", "tiny", *cli_overrides(checkpoint_every=2, sample_every=2)]
    run_dir = str(tmp_path / "run")
    run_python(TRAIN_CLI, str(tmp_path / "first.npz"), *argv, "--out", run_dir,
               "--set", "train.steps=2", "--set", "train.style_steps=0")
    mirrored_cli = ("import sys, tests.test_distribution as t\nt.use_logical_cpus(2)\n"
                    "t.train_cli(*sys.argv[1:])\n")
    resumed = run_python(mirrored_cli, str(tmp_path / "resumed.npz"), "--resume", run_dir,
                         "--strategy", "mirrored", "--steps", str(STEPS), "--set",
                         f"train.style_steps={OVERRIDES['style_steps']}")
    assert "resuming from gan step 2" in resumed.stdout
    for name, env in (("whole", None), ("reordered", reordered_env())):
        run_python(TRAIN_CLI, str(tmp_path / f"{name}.npz"), *argv, "--out", str(tmp_path / name),
                   env=env)
    assert_same_training_up_to_round_off(
        *(single_copies(load_arrays(tmp_path / f"{name}.npz"))
          for name in ("resumed", "whole", "reordered")))
