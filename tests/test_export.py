"""The inference functions and their SavedModel export, on the session's tiny run folder
(`cli_tiny_run`, trained once by `train.py --preset tiny`) and the export it ended with; both
read only here."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tf_t2i.config import get_preset
from tf_t2i.errors import UserInputError
from tf_t2i.export import (METADATA_FILE, SIGNATURE_NAMES, TextToImageExport, check_captions,
                           export_from_run_dir, export_saved_model, read_export_metadata,
                           validate_export)
from tf_t2i.runs import EXPORT_DIR, load_run

CAPTIONS = ["a small red bird with a short beak", "",
            "A Large BLUE Flower with round petals " * 3,  # > 64 characters: truncated.
            "ünïcödé € bird"]
SEED = 7
NOISE_SEED = 5
INTERPOLATION = ("a red bird", "a blue flower", 5, 3)
STYLE_CAPTIONS = ["a green bird", "a yellow flower", "a white bird"]

# Runs with the project NOT importable: cwd is a temporary folder, PYTHONPATH is cleared, and a
# meta-path hook refuses tf_t2i too (CI installs the package editable, so it would import).
SUBPROCESS_SCRIPT = textwrap.dedent("""
    import json, sys
    class _Refuse:
        def find_spec(self, name, path=None, target=None):
            if name == "tf_t2i" or name.startswith("tf_t2i."):
                raise ModuleNotFoundError("No module named 'tf_t2i' (blocked)", name=name)
    sys.meta_path.insert(0, _Refuse())
    try:
        import tf_t2i
        importable = True
    except ImportError:
        importable = False
    import numpy as np
    import tensorflow as tf
    export_dir, inputs_path, out_path = sys.argv[1:4]
    inputs = np.load(inputs_path)
    loaded = tf.saved_model.load(export_dir)
    captions = tf.constant([c.encode() for c in json.loads(str(inputs["captions"]))])
    style_captions = tf.constant([c.encode() for c in json.loads(str(inputs["style_captions"]))])
    a, b, steps, iseed = json.loads(str(inputs["interpolation"]))
    seed = tf.constant(int(inputs["seed"]), tf.int64)
    out = {
        "generate": loaded.generate(captions=captions, seed=seed)["images"],
        "serving_default": loaded.signatures["serving_default"](
            captions=captions, seed=seed)["images"],
        "generate_from_noise": loaded.generate_from_noise(
            captions=captions, noise=tf.constant(inputs["noise"]))["images"],
        "interpolate": loaded.interpolate(caption_a=a, caption_b=b, steps=steps,
                                          seed=iseed)["images"],
        "embed_text": loaded.embed_text(captions=captions)["embeddings"],
        "style_transfer": loaded.signatures["style_transfer"](
            images=tf.constant(inputs["images"]), captions=style_captions)["images"],
    }
    np.savez(out_path, **{k: v.numpy() for k, v in out.items()},
             importable=importable, imported=any(m.startswith("tf_t2i") for m in sys.modules))
""")


@pytest.fixture(scope="module")
def run_dir(cli_tiny_run):
    return cli_tiny_run


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


@pytest.fixture(scope="module")
def exporter(run):
    return TextToImageExport.from_run(run)


@pytest.fixture(scope="module")
def export_dir(run_dir):
    """The export train.py wrote at the end of the run (read only)."""
    return os.path.join(run_dir, EXPORT_DIR)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return {
        "captions": json.dumps(CAPTIONS),
        "style_captions": json.dumps(STYLE_CAPTIONS),
        "interpolation": json.dumps(INTERPOLATION),
        "seed": SEED,
        "noise": rng.standard_normal([len(CAPTIONS), 16]).astype(np.float32),
        "images": rng.integers(0, 256, [len(STYLE_CAPTIONS), 50, 70, 3], dtype=np.uint8),
    }


def _max_diff(a, b):
    return int(np.abs(np.asarray(a, np.int32) - np.asarray(b, np.int32)).max())


def _mean_diff(a, b):
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def test_round_trip_in_a_process_without_tf_t2i(exporter, export_dir, inputs, tmp_path):
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", SUBPROCESS_SCRIPT, export_dir, str(tmp_path / "inputs.npz"),
         str(tmp_path / "out.npz")], cwd=workdir, env=env, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    assert not out["importable"] and not out["imported"]

    expected = exporter.generate(CAPTIONS, SEED)["images"]
    assert out["generate"].dtype == np.uint8 and out["generate"].shape == (len(CAPTIONS), 32, 32, 3)
    assert _max_diff(out["generate"], expected) <= 1
    assert _max_diff(out["serving_default"], expected) <= 1
    assert _max_diff(out["generate_from_noise"],
                     exporter.generate_from_noise(CAPTIONS, inputs["noise"])["images"]) <= 1
    assert _max_diff(out["interpolate"], exporter.interpolate(*INTERPOLATION)["images"]) <= 1
    np.testing.assert_allclose(out["embed_text"], exporter.embed_text(CAPTIONS)["embeddings"],
                               rtol=1e-5, atol=1e-6)
    assert _max_diff(out["style_transfer"],
                     exporter.style_transfer(inputs["images"], STYLE_CAPTIONS)["images"]) <= 1


def test_the_saved_model_declares_every_signature(export_dir):
    """The signature defs that `saved_model_cli show --all` lists, read from saved_model.pb (the
    slow test below runs the tool itself, in a subprocess)."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    [meta_graph] = saved_model.meta_graphs
    assert "serve" in meta_graph.meta_info_def.tags
    signatures = meta_graph.signature_def
    for name in SIGNATURE_NAMES + ("serving_default",):
        assert name in signatures, name
    assert any("captions" in signature.inputs for signature in signatures.values())
    assert any("images" in signature.outputs for signature in signatures.values())


@pytest.mark.slow  # a TensorFlow start in a subprocess; the test above reads the same defs
def test_saved_model_cli_lists_every_signature(export_dir):
    command = shutil.which("saved_model_cli")
    command = [command] if command else [sys.executable, "-m",
                                         "tensorflow.python.tools.saved_model_cli"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(command + ["show", "--all", "--dir", export_dir],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in SIGNATURE_NAMES + ("serving_default",):
        assert f"signature_def['{name}']" in result.stdout
    assert "inputs['captions']" in result.stdout and "outputs['images']" in result.stdout


def test_metadata_and_validation(export_dir, run, run_dir):
    metadata = read_export_metadata(export_dir)
    assert metadata["image_size"] == 32 and metadata["z_dim"] == 16
    assert metadata["caption_length"] == run.config.data.caption_length
    assert metadata["alphabet"] == run.encoder.alphabet
    assert metadata["config_name"] == "tiny"
    assert metadata["checkpoint"]["step"] == run.config.train.steps
    assert metadata["checkpoint"]["style_step"] == run.config.train.style_steps
    assert metadata["serving_default"] == "generate"
    assert set(metadata["signatures"]) == set(SIGNATURE_NAMES)
    assert validate_export(export_dir, image_size=32, z_dim=16) == metadata
    with pytest.raises(UserInputError, match="image_size 32 but 64 is needed"):
        validate_export(export_dir, image_size=64)
    with pytest.raises(UserInputError, match="not a tf_t2i export"):
        read_export_metadata(os.path.dirname(export_dir))
    with pytest.raises(UserInputError, match="already exists"):
        export_saved_model(run, export_dir)
    with pytest.raises(UserInputError, match="already exists"):
        export_from_run_dir(run_dir, export_dir)
    assert os.path.isfile(os.path.join(export_dir, METADATA_FILE))


def test_same_seed_same_images_and_noise_independent_of_batch(exporter):
    first = exporter.generate(CAPTIONS, SEED)
    again = exporter.generate(CAPTIONS, SEED)
    np.testing.assert_array_equal(first["images"], again["images"])
    other = exporter.generate(CAPTIONS, SEED + 1)
    assert not np.array_equal(first["noise"], other["noise"])
    assert _mean_diff(first["images"], other["images"]) > 0
    # A caption's noise depends on (seed, caption) only: a shorter call draws the same rows.
    two = exporter.generate(CAPTIONS[:2], SEED)
    np.testing.assert_array_equal(two["noise"], first["noise"][:2])
    assert _max_diff(two["images"], first["images"][:2]) <= 1
    # ... and generate_from_noise reproduces generate from its noise output.
    redraw = exporter.generate_from_noise(CAPTIONS, first["noise"])["images"]
    assert _max_diff(redraw, first["images"]) <= 1


def test_same_caption_and_seed_draw_the_same_image_wherever_the_caption_stands(exporter):
    """The noise is a function of (seed, caption text): reordering, repeating or surrounding a
    caption with others does not change its image; case does not either (captions are
    lower-cased like the encoder does)."""
    captions = list(CAPTIONS[:3])
    forward = exporter.generate(captions, SEED)
    backward = exporter.generate(captions[::-1], SEED)
    np.testing.assert_array_equal(backward["noise"], forward["noise"][::-1])
    assert _max_diff(backward["images"], forward["images"][::-1]) <= 1
    alone = exporter.generate([captions[2]], SEED)
    np.testing.assert_array_equal(alone["noise"][0], forward["noise"][2])
    repeated = exporter.generate([captions[1], captions[1], captions[1].upper()], SEED)
    for row in repeated["noise"].numpy():
        np.testing.assert_array_equal(row, forward["noise"][1])
    # Pinned: Philox normal noise of seed [SEED, Fingerprint64(lower(caption)) mod (2^63 - 1)].
    key = tf.strings.to_hash_bucket_fast(captions[0].lower(), 2**63 - 1)
    expected = tf.random.stateless_normal([exporter.z_dim], seed=tf.stack(
        [tf.constant(SEED, tf.int64), key]), alg="philox")
    np.testing.assert_array_equal(forward["noise"][0], expected)
    assert not np.array_equal(forward["noise"][0], forward["noise"][1])


def test_interpolate_runs_from_a_to_b_with_one_noise(exporter):
    a, b, steps, seed = INTERPOLATION
    out = exporter.interpolate(a, b, steps, seed)
    assert out["images"].shape == (steps, 32, 32, 3) and out["images"].dtype == tf.uint8
    np.testing.assert_allclose(out["t"], np.linspace(0, 1, steps), atol=1e-6)
    assert _max_diff(out["images"][0], exporter.generate([a], seed)["images"][0]) <= 1
    a_noise = exporter.generate([a], seed)["noise"]
    assert _max_diff(out["images"][-1], exporter.generate_from_noise([b], a_noise)["images"][0]) <= 1
    with pytest.raises(tf.errors.InvalidArgumentError, match="steps >= 1"):
        exporter.interpolate(a, b, 0, seed)


def test_embed_text_captions_rules(exporter, run):
    embeddings = exporter.embed_text(CAPTIONS)["embeddings"].numpy()
    assert embeddings.shape == (len(CAPTIONS), 32) and embeddings.dtype == np.float32
    # Empty caption: all padding, which the text encoder maps to its output bias, rescaled to
    # norm sqrt(E) (or zero while the bias is zero).
    bias = run.gan.text_encoder.projection.bias.numpy()
    expected = bias * np.sqrt(bias.size) / max(np.linalg.norm(bias), 1e-12)
    np.testing.assert_allclose(embeddings[1], expected, atol=1e-4)
    length = run.config.data.caption_length
    same = exporter.embed_text([CAPTIONS[2][:length], CAPTIONS[2].lower()])["embeddings"]
    np.testing.assert_allclose(same, embeddings[[2, 2]], atol=1e-5)
    assert exporter.embed_text([])["embeddings"].shape == (0, 32)
    assert exporter.generate([], SEED)["images"].shape == (0, 32, 32, 3)


def test_check_captions_warns_per_problem(run):
    warnings = check_captions(CAPTIONS, run.encoder)
    assert len(warnings) == 3
    assert warnings[0].startswith("caption 1 is empty")
    assert warnings[1].startswith("caption 2") and "only the first 64" in warnings[1]
    assert warnings[2].startswith("caption 3") and "'€'" in warnings[2] and "'ü'" in warnings[2]
    assert check_captions(["a red bird.", b"BLUE"], run.encoder) == []


def test_style_transfer_accepts_any_size_and_broadcasts(exporter):
    images = np.random.default_rng(1).integers(0, 256, [2, 50, 70, 3], dtype=np.uint8)
    out = exporter.style_transfer(images, ["a red bird", "a blue flower"])
    assert out["images"].shape == (2, 32, 32, 3) and out["styles"].shape == (2, 16)
    many = exporter.style_transfer(images[:1], ["a red bird", "a blue flower", ""])
    assert many["images"].shape == (3, 32, 32, 3)
    np.testing.assert_allclose(many["styles"][2], out["styles"][0], atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="style_transfer pairs"):
        exporter.style_transfer(images, ["a", "b", "c"])


def test_style_transfer_recovers_the_style_of_generated_images(run_dir):
    """style_transfer(G(z, t), t) is close to G(z, t), after S is trained on this G.

    The 4-step tiny G draws nearly flat images (z moves pixels by < 1 uint8 level), so the test
    first scales G's output convolution until z visibly changes images (a valid, sharper G), then
    trains S on it with the style stage's own step for a few hundred steps.
    """
    run = load_run(run_dir)
    gan = run.gan
    captions = ["a small red bird with a short beak", "a large blue flower with round petals",
                "a green bird with black wings", "a yellow flower with a dark center",
                "this bird is white and grey", "purple petals around a white center"]
    ids = run.encoder.encode(captions).numpy()
    output_conv = gan.generator.image_decoder.layers[-2]
    z = tf.random.stateless_normal([16, gan.z_dim], seed=[0, 0])
    drawn = gan.generator((z, gan.text_encoder(ids[np.arange(16) % len(ids)])), training=False)
    output_conv.kernel.assign(output_conv.kernel * (0.15 / np.std(drawn.numpy(), axis=0).mean()))

    exporter = TextToImageExport.from_run(run)
    images = exporter.generate(captions, 11)["images"]
    others = exporter.generate(captions, 12)["images"]
    between_styles = _mean_diff(images, others)
    assert between_styles > 5  # z matters: else the comparison below means nothing.
    untrained = _mean_diff(images, exporter.style_transfer(images, captions)["images"])

    step = tf.function(gan.style_step)
    rng = np.random.default_rng(0)
    style_losses = []
    for _ in range(250):
        gan.style_trackers["style_loss"].reset_state()
        logs = step({"captions": tf.constant(ids[rng.integers(0, len(ids), 32)][:, None, :])})
        style_losses.append(float(logs["style_loss"]))
    # S's loss ||z - S(G(z, t))||^2 falls: from about z_dim (S outputs ~0) to a fraction of it.
    assert np.mean(style_losses[-20:]) < 0.5 * np.mean(style_losses[:5]), style_losses[::25]
    recovered = _mean_diff(images, exporter.style_transfer(images, captions)["images"])
    assert recovered < 0.3 * between_styles, (recovered, between_styles)
    assert recovered < 0.5 * untrained, (recovered, untrained)



def ema_run(tmp_path):
    """A tiny model with train.ema_decay on whose average differs from G (as after training),
    saved as a checkpoint and restored into a new model: (config, restored LoadedRun, saved gan)."""
    import keras

    from tf_t2i.checkpoints import RunCheckpoints
    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.runs import LoadedRun, build_gan

    config = get_preset("tiny")
    config = dataclasses.replace(config, train=dataclasses.replace(
        config.train, ema_decay=0.999, precision="float32"))
    keras.mixed_precision.set_global_policy("float32")
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=1)
    for average in gan.ema_generator.trainable_weights:
        average.assign(average * 0.5 + 0.01)
    RunCheckpoints(str(tmp_path)).save(gan, {"step": 1})
    restored = build_gan(config, encoder.vocabulary_size, steps_per_epoch=1)
    record = RunCheckpoints(str(tmp_path)).restore(restored)
    return LoadedRun(config, encoder, restored, record), gan


EMA_CAPTIONS = ["a red bird", "a blue flower"]


def assert_drawn_by_the_average(drawn, run, exporter, noise):
    """`drawn` (uint8) are the EMA generator's images of EMA_CAPTIONS, not G's."""
    embeddings = exporter.embed_text(EMA_CAPTIONS)["embeddings"]

    def draw(generator):
        return np.round((generator((noise, embeddings)).numpy() + 1.0) * 127.5)

    assert _max_diff(drawn, draw(run.gan.ema_generator)) <= 1
    assert _max_diff(drawn, draw(run.gan.generator)) > 1


def test_the_ema_generator_is_checkpointed_and_draws_the_exported_images(tmp_path):
    """With train.ema_decay on, checkpoints hold G's average, and the export functions draw
    with it (the SavedModel round trip: the slow test below)."""
    run, saved = ema_run(tmp_path)
    for name in ("generator", "ema_generator"):
        for before, after in zip(getattr(saved, name).weights, getattr(run.gan, name).weights):
            np.testing.assert_array_equal(after.numpy(), before.numpy(), err_msg=before.path)
    exporter = TextToImageExport.from_run(run)
    assert exporter.generator is run.gan.ema_generator
    noise = np.random.default_rng(0).standard_normal((2, run.config.model.z_dim), np.float32)
    drawn = exporter.generate_from_noise(EMA_CAPTIONS, noise)["images"]
    assert_drawn_by_the_average(drawn, run, exporter, noise)


@pytest.mark.slow
def test_the_saved_model_draws_with_the_ema_generator(tmp_path):
    run, _ = ema_run(tmp_path)
    exporter = TextToImageExport.from_run(run)
    path = export_saved_model(exporter, str(tmp_path / "export"))
    noise = np.random.default_rng(0).standard_normal((2, run.config.model.z_dim), np.float32)
    captions = tf.constant([c.encode() for c in EMA_CAPTIONS])
    loaded = tf.saved_model.load(path)
    drawn = loaded.generate_from_noise(captions=captions, noise=tf.constant(noise))["images"]
    assert_drawn_by_the_average(drawn, run, exporter, noise)


def test_a_model_with_text_slots_and_attention_exports_and_draws_the_same_images(tmp_path):
    """The two-input attention decoder and the slot text encoder survive the SavedModel trace."""
    import keras

    from tf_t2i.config import apply_overrides
    from tf_t2i.data.caption_encoder import CaptionEncoder
    from tf_t2i.runs import LoadedRun, build_gan

    config = apply_overrides(get_preset("tiny"), [
        "model.generator_conditioning=attention", "model.text_tokens=4", "model.text_slots=4",
        "model.text_batch_norm=true", "train.precision=float32"]).validate()
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)  # the same weights whichever tests ran before in this worker
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=1)
    rng = np.random.default_rng(0)
    for weight in gan.generator.weights:  # zero at the start: make the attention draw
        if "token_attention_affine" in weight.path and "modulation" in weight.path:
            weight.assign(rng.normal(0.0, 0.5, weight.shape).astype(np.float32))
    exporter = TextToImageExport.from_run(LoadedRun(config, encoder, gan, {"step": 0}))
    path = export_saved_model(exporter, str(tmp_path / "export"))
    noise = np.random.default_rng(0).standard_normal((2, config.model.z_dim), np.float32)
    expected = exporter.generate_from_noise(EMA_CAPTIONS, noise)["images"]
    loaded = tf.saved_model.load(path)
    drawn = loaded.generate_from_noise(captions=tf.constant([c.encode() for c in EMA_CAPTIONS]),
                                       noise=tf.constant(noise))["images"]
    assert _max_diff(drawn, expected) <= 1
    assert _max_diff(expected[0], expected[1]) > 1  # the two captions draw apart
