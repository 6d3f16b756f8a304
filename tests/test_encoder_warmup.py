"""The encoder warm-up stage and frozen encoders (train.encoder_warmup_steps, freeze_encoders).

Reed et al. pretrain phi before the GAN and keep it fixed; these options make that a stage of
the run: the warm-up step trains only the encoders, a GAN step with frozen encoders trains only
D and G, and a run interrupted during the warm-up resumes it, then trains the GAN.
"""
import dataclasses
import json
import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

from tf_t2i import losses
from tf_t2i.checkpoints import RunCheckpoints
from tf_t2i.config import Config, apply_overrides, get_preset
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.errors import TrainingInterrupted
from tf_t2i.stage_loop import StageLoop
from tf_t2i import training
from tf_t2i.training import run_training
from tests.test_gan import CONFIG, changed, encoder, make_gan, snapshot  # noqa: F401 (fixture)

ENCODERS = ("text_encoder", "image_encoder")
OTHERS = ("generator", "discriminator", "style_encoder")


@pytest.fixture(scope="module")
def hard_batch(encoder):
    """A batch with hard negative captions (the warm-up trains on them when weighted)."""
    dataset = load_dataset(CONFIG.data)
    words = ("red", "blue", "yellow", "white", "pink", "purple", "orange")
    return next(iter(make_train_dataset(dataset.train, CONFIG.data, encoder,
                                        attribute_words=words)))


def moved_groups(before, after):
    return {group for group, (moved, _) in changed(before, after).items() if moved}


def test_warmup_step_trains_only_the_encoders(encoder, hard_batch):
    gan = make_gan(encoder, encoder_warmup_steps=1, hard_negative_weight=1.0)
    before = snapshot(gan)
    logs = gan.encoder_step(hard_batch)
    moved = moved_groups(before, snapshot(gan))
    assert moved == {"text_encoder.trainable", "image_encoder.trainable",
                     "image_encoder.non_trainable", "encoder_optimizer"}
    assert int(gan.encoder_optimizer.iterations) == 1
    assert float(logs["matching_loss"]) > 0 and float(logs["hard_negative_loss"]) > 0
    # The GAN stage's trackers are left alone: each stage logs its own.
    assert all(int(tracker.count) == 0 for tracker in gan.trackers.values())


def test_gan_step_with_frozen_encoders_trains_only_d_and_g(encoder, hard_batch):
    gan = make_gan(encoder, encoder_warmup_steps=1, freeze_encoders=True,
                   hard_negative_wrong_fraction=0.5)
    assert not gan.train_encoders
    before = snapshot(gan)
    gan.train_step(hard_batch)
    moved = moved_groups(before, snapshot(gan))
    assert {"generator.trainable", "discriminator.trainable", "d_optimizer",
            "g_optimizer"} <= moved
    assert not any(group.startswith(ENCODERS + ("encoder_optimizer", "style"))
                   for group in moved), moved
    assert int(gan.trackers["matching_loss"].count) == 0


def test_frozen_gan_step_on_the_pipelines_embeddings_equals_the_step_on_ids(encoder):
    """The pipeline embeds every caption once when the encoders are frozen; the GAN step on
    those embeddings is the step that embeds the same batch's ids, up to float round-off."""
    overrides = dict(encoder_warmup_steps=1, freeze_encoders=True,
                     hard_negative_wrong_fraction=0.5)
    words = ("red", "blue", "yellow", "white", "pink", "purple", "orange")
    split = load_dataset(CONFIG.data).train

    def first_batch(**kwargs):
        return next(iter(make_train_dataset(split, CONFIG.data, encoder, attribute_words=words,
                                            **kwargs)))

    gan = make_gan(encoder, **overrides)
    embedded_batch = first_batch(embed_captions=gan.embed_caption_table)
    ids_batch = first_batch()
    np.testing.assert_allclose(
        *(gan._batch_embeddings(batch)[0] for batch in (embedded_batch, ids_batch)), atol=1e-5)
    gan.train_step(embedded_batch)
    after_embedded = snapshot(gan)
    gan = make_gan(encoder, **overrides)
    gan.train_step(ids_batch)
    after_ids = snapshot(gan)
    # Adam's first step moves a weight by up to the learning rate whatever its gradient's size,
    # so round-off in a gradient near Adam's epsilon shows as up to 1e-4 here (oneDNN's AVX2
    # kernels: 4.4e-5 on 4 of 65,536 weights of G), not 1e-5.
    for group, values in after_ids.items():
        for embedded, from_ids in zip(after_embedded[group], values):
            np.testing.assert_allclose(embedded, from_ids, atol=1e-4, err_msg=group)


def test_a_gan_step_that_trains_the_encoders_refuses_precomputed_embeddings(encoder):
    gan = make_gan(encoder)
    batch = {"caption_embeddings": tf.zeros([4, 2, CONFIG.model.embedding_dim])}
    with pytest.raises(ValueError, match="needs caption ids"):
        gan._batch_embeddings(batch)


def test_frozen_encoders_need_a_warmup():
    values = get_preset("tiny").to_dict()
    values["train"]["freeze_encoders"] = True
    with pytest.raises(ValueError, match="freeze_encoders needs train.encoder_warmup_steps"):
        Config.from_dict(values).validate()


def _h5_group(path, name):
    with h5py.File(path, "r") as f:
        values = {}
        f[name].visititems(lambda key, item: values.__setitem__(key, item[()])
                           if isinstance(item, h5py.Dataset) else None)
    return values


def test_a_run_interrupted_in_the_warmup_resumes_it_then_trains_the_gan(tmp_path, monkeypatch,
                                                                        capsys):
    tiny = get_preset("tiny")
    config = dataclasses.replace(tiny, train=dataclasses.replace(
        tiny.train, encoder_warmup_steps=4, freeze_encoders=True, encoder_learning_rate=1e-3,
        steps=2, style_steps=0, checkpoint_every=2, sample_every=2, log_every=2))
    run_dir = str(tmp_path / "run")
    real_run = StageLoop.run
    # Not under test here.
    monkeypatch.setattr(training, "write_training_curves", lambda run_dir: None)

    def stop_after_two_warmup_steps(self, stage, step_fn, trackers, stream, record, total):
        assert stage == "encoder"
        real_run(self, stage, step_fn, trackers, stream, record, 2)
        raise TrainingInterrupted("stopped by the test")

    monkeypatch.setattr(StageLoop, "run", stop_after_two_warmup_steps)
    with pytest.raises(TrainingInterrupted):
        run_training(config, run_dir, export=False)
    stopped = RunCheckpoints(run_dir).latest()
    assert (stopped["stage"], stopped["encoder_step"], stopped["step"]) == ("encoder", 2, 0)

    monkeypatch.setattr(StageLoop, "run", real_run)
    capsys.readouterr()
    record = run_training(config, run_dir, resume=True, export=False)
    out = capsys.readouterr().out
    assert "resuming from encoder step 2" in out
    assert out.index("encoder stage:") < out.index("gan stage:")
    assert (record["stage"], record["encoder_step"], record["step"]) == ("gan", 4, 2)

    # The warm-up's last checkpoint (number 4) and the GAN stage's (4 + 2): frozen encoders are
    # the same in both, the generator is not.
    latest = RunCheckpoints(run_dir).latest()
    assert latest["weights"].endswith("ckpt-00000006.weights.h5")
    with open(os.path.join(run_dir, "checkpoints", "latest.json"), encoding="utf-8") as f:
        warmed = json.load(f)["previous"]
    assert (warmed["stage"], warmed["encoder_step"], warmed["step"]) == ("encoder", 4, 0)
    warmed_path = latest["weights"].replace("00000006", "00000004")
    for model in ("layers/text_encoder", "image_encoder"):
        before, after = _h5_group(warmed_path, model), _h5_group(latest["weights"], model)
        assert before and all(np.array_equal(before[k], after[k]) for k in before), model
    before, after = (_h5_group(warmed_path, "generator"),
                     _h5_group(latest["weights"], "generator"))
    assert any(not np.array_equal(before[k], after[k]) for k in before)


def test_conditioning_captions_set_the_gan_and_style_stages_captions_not_the_warmups(
        tmp_path, monkeypatch):
    """train.conditioning_captions=1: the warm-up still matches the mean of the k captions of
    each image, while the GAN and style stages condition on one caption (the pipeline's
    embedding table then holds one row per example)."""
    tiny = get_preset("tiny")
    config = dataclasses.replace(tiny, train=dataclasses.replace(
        tiny.train, encoder_warmup_steps=1, freeze_encoders=True, steps=1, style_steps=1,
        conditioning_captions=1, checkpoint_every=1, sample_every=1, log_every=1))
    assert config.validate().data.captions_per_image == 4
    monkeypatch.setattr(training, "write_training_curves", lambda run_dir: None)
    seen = {}
    real_run = StageLoop.run

    def record_batches(self, stage, step_fn, trackers, stream, record, total):
        seen[stage] = {key: spec.shape.as_list() for key, spec in stream.element_spec.items()}
        return real_run(self, stage, step_fn, trackers, stream, record, total)

    monkeypatch.setattr(StageLoop, "run", record_batches)
    run_training(config, str(tmp_path / "run"), export=False)
    batch, length = config.data.batch_size, config.data.caption_length
    assert seen["encoder"]["captions"] == [batch, 4, length]
    assert seen["gan"]["caption_embeddings"][:2] == [batch, 1]
    assert seen["style"]["caption_embeddings"][:2] == [batch, 1]


def test_conditioning_captions_cannot_exceed_the_captions_per_image():
    with pytest.raises(ValueError, match=r"train.conditioning_captions must be in \[0, data"):
        apply_overrides(get_preset("tiny"), ["train.conditioning_captions=5"]).validate()


@pytest.mark.parametrize("same_class_negatives", [False, True])
def test_same_class_negatives_decide_whether_the_matching_loss_sees_labels(
        encoder, hard_batch, monkeypatch, same_class_negatives):
    """Class-level (Reed): same-class pairs are no negatives; instance-level: every other
    example is one. The step's loss is `losses.matching_loss` with or without the labels."""
    gan = make_gan(encoder, same_class_negatives=same_class_negatives)
    text = gan.embed_captions(hard_batch["captions"], training=True)
    image = gan.image_encoder(hard_batch["images"], training=True)
    # Pairs of examples labelled as one class, so that the two losses differ.
    labels = tf.range(len(hard_batch["labels"])) // 2
    expected = losses.matching_loss(text, image, None if same_class_negatives else labels)
    assert float(expected) != pytest.approx(float(losses.matching_loss(
        text, image, labels if same_class_negatives else None)))
    gan._encoder_step(hard_batch["images"], hard_batch["captions"], labels)
    assert float(gan.trackers["matching_loss"].result()) == pytest.approx(float(expected),
                                                                          rel=1e-5)
