"""The GAN-INT-CLS training model: one train step = encoder step, D step, G step.

Reference: Reed et al. 2016, Algorithm 1 (GAN-CLS) and section 4.3 (GAN-INT).
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tf_t2i import diff_augment, losses, replica_ops
from tf_t2i.models import text_encoder as text_encoder_module

METRIC_NAMES = ("matching_loss", "d_loss", "g_loss", "interp_loss", "mode_seeking_loss", "d_real",
                "d_wrong", "d_fake", "gradient_penalty", "hard_negative_loss",
                "hard_negative_check_loss", "generator_matching_loss", "recombined_text_loss",
                "latent_regression_loss", "reconstruction_loss", "style_prior_loss")
STYLE_METRIC_NAMES = ("style_loss", "style_reconstruction_loss")
ENCODER_METRIC_NAMES = ("matching_loss", "hard_negative_loss")


@keras.saving.register_keras_serializable(package="tf_t2i")
class TextToImageGAN(keras.Model):
    """Trains a text encoder, image encoder, generator and discriminator, then a style encoder.

    Each `train_step` (the GAN stage) runs three phases, each updating only its own models:
      1. encoder step: the text and image encoders learn a joint embedding with the matching loss;
      2. discriminator step: D learns {real, right text} = real, {real, wrong text} and
         {fake, right text} = fake (GAN-CLS);
      3. generator step: G learns to fool D, also on interpolated text embeddings (GAN-INT).
    G and D see the text embeddings as constants: only the matching loss trains the encoders.
    BatchNorm running statistics are updated by any training-mode forward pass of their model
    (G's by the D step's fakes too, when it draws its own: `shared_fakes` off); they are
    statistics, not trained weights.

    `encoder_step` (the optional encoder warm-up stage, before the GAN stage) runs phase 1 alone,
    as Reed et al. pretrain phi before the GAN (section 5). With `train_encoders` False the GAN
    stage then uses the warmed-up encoders as they are (Reed's fixed phi): phase 1 only embeds.

    `style_step` (the style stage, after the GAN stage) trains the style encoder S alone, with G
    and the text encoder frozen, to recover z from G(z, phi(t)) (section 4.4), and with a style
    reconstruction weight also to reconstruct real images through the frozen G. With a latent
    regression or reconstruction weight, S also trains in the GAN stage, inside the generator
    step, with its own optimizer (BicycleGAN's cLR and cVAE-GAN terms; `_style_terms`).

    Under a `tf.distribute` strategy each replica runs the step on its contiguous slice of the
    global batch and computes what one device computes on the whole batch (`replica_ops`): the
    matching loss and the wrong captions use the gathered global batch, noise is this replica's
    rows of one global draw, GAN-INT pairs and mode-seeking twins stay inside a replica's slice
    (adjacent examples; the per-replica batch must be even), and with `sync_batch_norm` the
    BatchNorm statistics are the global batch's.

    Args:
        text_encoder: caption ids [N, T] -> embeddings [N, E].
        image_encoder: images [N, S, S, 3] -> embeddings [N, E].
        generator: (z [N, Z], embeddings [N, E]) -> images [N, S, S, 3].
        discriminator: (images, embeddings) -> logits [N].
        style_encoder: images [N, S, S, 3] -> z [N, Z].
        cls_weight: weight of the {real image, wrong text} term in D's loss.
        interp_weight: weight of the GAN-INT term in G's loss; 0 turns GAN-INT off.
        interp_beta: beta of interpolated embeddings beta * t1 + (1 - beta) * t2.
        interp_type: "interpolate" or "extrapolate" (Reed's interp_type=2, alpha ~ U(-1, 1)).
        interp_fakes_for_discriminator: D's fake term also covers G's images of the interpolated
            texts, with those texts (not in Reed's design, where D never sees them); needs
            interp_weight > 0.
        mode_seeking_weight: weight of a mode-seeking term in G's loss (Mao et al. 2019; not in
            Reed's design): G is penalised when two noise vectors give the same image for the
            same text. 0 turns it off.
        matching_margin: margin of the matching hinge loss.
        same_class_negatives: other examples of the same class are negatives of the matching
            loss too (instance-level); False leaves them out (class-level, Reed's structure).
        hard_negative_weight: weight of the hard negative term in the encoders' loss
            (`losses.hard_negative_loss`; not in Reed's design); 0 turns it off.
        hard_negative_wrong_fraction: fraction of D's wrong texts that are the image's own
            hard negative caption instead of another class's caption; 0 turns it off.
            Either option needs batches with `hard_negative_captions`
            (`tf_t2i.data.pipeline.make_train_dataset(attribute_words=...)`).
        latent_regression_weight: weight of mean |z - S(G(z, t))| in G's and S's loss
            (BicycleGAN's cLR; not in Reed's design); 0 turns it off.
        reconstruction_weight: weight of mean |x - G(S(x), phi(t_x))| on real images in G's and
            S's loss (BicycleGAN's cVAE-GAN, deterministic S); 0 turns it off.
        style_prior_weight: weight of `losses.style_prior_loss` on S(x) of real images in S's
            loss (needs a reconstruction weight); 0 turns it off.
        style_reconstruction_weight: weight of mean |x - G(S(x), phi(t_x))| on real images in
            the style stage, where G is frozen and only S learns (`style_step`; not in Reed's
            design); 0 turns it off (Reed's stage: S learns from G's images alone).
        seed: seed of the noise generator (its state is saved with checkpoints).
        gan_loss: "bce" (Reed's GAN-CLS) or "hinge" (DF-GAN, Tao et al. 2022): D's and G's
            losses, the GAN-INT term included (`losses.GAN_LOSSES`).
        gradient_penalty_weight: weight of the matching-aware gradient penalty on D (MA-GP,
            DF-GAN: 2) at real images with their texts; 0 turns it off.
        gradient_penalty_power: the power p of MA-GP's gradient norm (DF-GAN: 6).
        diff_augment: "translation" shows D every image, real or fake, randomly translated
            (DiffAugment, Zhao et al. 2020); "" turns it off.
        ema_generator: a second generator of G's architecture that holds an exponential moving
            average of G's weights (and a copy of G's BatchNorm statistics), updated after each
            G step; it draws every sample, evaluation and export. None turns the average off.
        ema_decay: the average's decay (typical 0.999).
        train_encoders: whether the GAN stage keeps training the encoders with the matching
            loss (True) or only embeds the captions with them (False: Reed's pretrained, fixed
            phi; `encoder_step` trains them beforehand).
        shared_fakes: the D step trains on the G step's fakes of the batch's texts, so that G
            draws once per step (as PyTorch's DCGAN example does); False: the D step draws
            fakes of its own with fresh noise (Reed's code), one more G forward pass per step.
        hard_negative_check_weight: weight of a term in D's loss that scores each real image
            with each of its k captions (real) and that caption's hard negative (wrong), single
            captions rather than the mean of k (`_check_texts`; not in Reed's design); 0 turns
            it off. Needs batches with hard negatives, as the options above.
        generator_matching_weight: weight of a term in G's loss that embeds G's images of the
            batch's texts with the image encoder (inference mode, never updated by it) and
            scores them against the texts with the encoders' matching loss, plus the hard
            negative term where the batch has negatives (`_generator_matching`; AttnGAN's DAMSM
            sentence loss, not in Reed's design); 0 turns it off.
        recombined_text_weight: weight of a term in G's loss on images G draws for recombined
            texts: the hard negatives of every other example of the batch, new combinations of
            its attribute words (`_recombined_loss`; not in Reed's design); 0 turns it off.
    """

    def __init__(self, text_encoder, image_encoder, generator, discriminator, style_encoder,
                 cls_weight=0.5,
                 interp_weight=1.0, interp_beta=0.5, interp_type="interpolate",
                 interp_fakes_for_discriminator=False, mode_seeking_weight=0.0,
                 matching_margin=0.2, same_class_negatives=False,
                 hard_negative_weight=0.0,
                 hard_negative_wrong_fraction=0.0, seed=0, gan_loss="bce",
                 gradient_penalty_weight=0.0, gradient_penalty_power=6.0, diff_augment="",
                 ema_generator=None, ema_decay=0.0, latent_regression_weight=0.0,
                 reconstruction_weight=0.0, style_prior_weight=0.0, train_encoders=True,
                 shared_fakes=False, hard_negative_check_weight=0.0,
                 generator_matching_weight=0.0, recombined_text_weight=0.0,
                 style_reconstruction_weight=0.0, **kwargs):
        super().__init__(**kwargs)
        self.text_encoder = text_encoder
        self.image_encoder = image_encoder
        self.generator = generator
        self.discriminator = discriminator
        self.style_encoder = style_encoder
        self.cls_weight = cls_weight
        self.interp_weight = interp_weight
        self.interp_beta = interp_beta
        self.interp_type = interp_type
        self.interp_fakes_for_discriminator = interp_fakes_for_discriminator
        self.mode_seeking_weight = mode_seeking_weight
        self.matching_margin = matching_margin
        self.same_class_negatives = same_class_negatives
        self.hard_negative_weight = hard_negative_weight
        self.hard_negative_wrong_fraction = hard_negative_wrong_fraction
        self.latent_regression_weight = latent_regression_weight
        self.reconstruction_weight = reconstruction_weight
        self.style_prior_weight = style_prior_weight
        self.style_reconstruction_weight = style_reconstruction_weight
        self.train_encoders = train_encoders
        self.shared_fakes = shared_fakes
        self.hard_negative_check_weight = hard_negative_check_weight
        self.generator_matching_weight = generator_matching_weight
        self.recombined_text_weight = recombined_text_weight
        self.seed = seed
        self.gan_loss = gan_loss
        self._d_loss, self._g_loss, self._interp_loss = losses.GAN_LOSSES[gan_loss]
        self.gradient_penalty_weight = gradient_penalty_weight
        self.gradient_penalty_power = gradient_penalty_power
        self.diff_augment = diff_augment
        self.ema_generator = ema_generator
        self.ema_decay = ema_decay
        if ema_generator is not None:
            # The average starts at G's initial weights (a restored checkpoint overwrites both).
            for average, weight in zip(ema_generator.weights, generator.weights):
                average.assign(weight)
        self.z_dim = generator.z_dim
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in METRIC_NAMES}
        self.style_trackers = {name: keras.metrics.Mean(name=name) for name in STYLE_METRIC_NAMES}
        self.encoder_trackers = {name: keras.metrics.Mean(name=f"encoder_{name}")
                                 for name in ENCODER_METRIC_NAMES}

    def compile(self, encoder_optimizer, d_optimizer, g_optimizer, style_optimizer, **kwargs):
        # optimizer=None: a plain compile() would create an unused default optimizer.
        super().compile(optimizer=None, **kwargs)
        self.encoder_optimizer = encoder_optimizer
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.style_optimizer = style_optimizer

    def build_optimizers(self):
        """Creates every optimizer slot, so checkpoints restore into a model that never trained."""
        self.encoder_optimizer.build(self._encoder_variables())
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.style_optimizer.build(self.style_encoder.trainable_variables)

    @property
    def metrics(self):
        return (list(self.encoder_trackers.values()) + list(self.trackers.values())
                + list(self.style_trackers.values()))

    @property
    def sampling_generator(self):
        """The generator that draws samples, evaluations and exports: G's average when kept."""
        return self.generator if self.ema_generator is None else self.ema_generator

    def call(self, inputs, training=False):
        """Draws images: (z [N, Z], caption ids [N, k, T]) -> images [N, S, S, 3] in [-1, 1]."""
        z, captions = inputs
        return self.sampling_generator((z, self.embed_captions(captions, training=training)),
                                       training=training)

    def embed_captions(self, captions, training=False):
        """The conditioning vector: the mean embedding of k captions, rescaled to norm sqrt(E).

        Args:
            captions: int32 [N, k, T] caption ids.

        Returns:
            float32 [N, E].
        """
        shape = keras.ops.shape(captions)
        flat = keras.ops.reshape(captions, (-1, shape[-1]))
        embeddings = self.text_encoder(flat, training=training)
        return conditioning_vector(keras.ops.reshape(embeddings, (shape[0], shape[1], -1)))

    def embed_caption_table(self, caption_ids, chunk_size=1024):
        """Every caption's embedding from the text encoder in inference mode, in chunks: the
        input pipeline's table for a stage in which the text encoder does not train.

        Captions are embedded shortest first, each chunk cut to its longest caption (rounded
        up to whole max-pool windows), so that the encoder does not run over padding: a
        caption's embedding does not depend on the padding after it (`TextEncoder`).

        Args:
            caption_ids: int32 [M, T] numpy array, 0 = padding (right-padded).

        Returns:
            float32 [M, E] numpy array, row for row with `caption_ids`.
        """
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def embed(chunk):
            return tf.cast(self.text_encoder(chunk, training=False), tf.float32)

        full_length = caption_ids.shape[1]
        window = text_encoder_module.POOL_SIZE ** (len(self.text_encoder.conv_filters) - 1)
        lengths = np.count_nonzero(caption_ids, axis=1)
        order = np.argsort(lengths, kind="stable")
        table = np.zeros([len(caption_ids), self.text_encoder.embedding_dim], np.float32)
        for start in range(0, len(order), chunk_size):
            rows = order[start:start + chunk_size]
            length = min(full_length, max(window, -(-int(lengths[rows].max()) // window) * window))
            table[rows] = embed(caption_ids[rows, :length]).numpy()
        return table

    def noise(self, batch_size):
        """z ~ N(0, 1) [batch_size, Z] from the tracked seed generator."""
        return self._draw(keras.random.normal, batch_size, self.z_dim)

    def _draw(self, sample, rows, width, **kwargs):
        """[rows, width] from `sample(shape, seed=self.seed_generator, **kwargs)`.

        The seed generator advances identically on every replica, so each replica draws the
        rows of all replicas and keeps its own: replicas draw different noise, and together
        the same noise one device draws for the whole batch.
        """
        drawn = sample((rows * replica_ops.replica_count(), width), seed=self.seed_generator,
                       **kwargs)
        return replica_ops.local_rows(drawn, rows)

    def train_step(self, data):
        """One GAN step on a batch (a replica's slice of the global batch under a strategy).

        `wrong_indices` index the global batch: the wrong captions of an example may be those
        of another replica's example. With hard negatives, `hard_negative_captions` [N, k, T]
        are each example's captions with their attributes rebound (tf_t2i.data.hard_negatives).
        With frozen encoders the batch may carry the pipeline's embeddings instead of ids
        (`make_train_dataset(embed_captions=...)`).
        """
        embeddings, negative_embeddings, has_negative = self._batch_embeddings(data)
        wrong_embeddings = tf.gather(replica_ops.gather(embeddings), data["wrong_indices"])
        if self.hard_negative_wrong_fraction > 0:
            wrong_embeddings = self._with_hard_wrong_texts(
                wrong_embeddings, negative_embeddings, has_negative)
        texts = _BatchTexts(negative_embeddings, has_negative, data["labels"])
        drawn = self._draw_fakes(embeddings, texts) if self.shared_fakes else None
        fake_images, fake_embeddings = (
            (None, None) if drawn is None
            else drawn.discriminator_fakes(self.interp_fakes_for_discriminator))
        self._discriminator_step(
            data["images"], embeddings, wrong_embeddings, fake_images=fake_images,
            fake_embeddings=fake_embeddings,
            check_texts=self._check_texts(data) if self.hard_negative_check_weight > 0 else None)
        self._generator_step(embeddings, data["images"], drawn=drawn, texts=texts)
        self._update_ema()
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def _batch_embeddings(self, data):
        """(embeddings [N, E], hard negative embeddings [N, E] or None, bool [N] whether the
        example has a hard negative or None) of a GAN batch: from the pipeline's table, or by
        the encoders here (their matching step first when they train in this stage)."""
        wants_negatives = (self.hard_negative_weight > 0 or self.hard_negative_wrong_fraction > 0
                           or self.recombined_text_weight > 0)
        if "caption_embeddings" in data:
            if self.train_encoders:
                raise ValueError("the encoders train in this GAN step, so it needs caption ids, "
                                 "not the pipeline's embeddings (train.freeze_encoders is off).")
            if not wants_negatives:
                return conditioning_vector(data["caption_embeddings"]), None, None
            return (conditioning_vector(data["caption_embeddings"]),
                    conditioning_vector(data["hard_negative_embeddings"]),
                    tf.reduce_any(data["hard_negative_differs"], axis=1))
        captions = data["captions"]
        negatives = data["hard_negative_captions"] if wants_negatives else None
        if self.train_encoders:
            embeddings, negative_embeddings = self._encoder_step(
                data["images"], captions, data["labels"], negatives)
        else:
            embeddings, negative_embeddings = self._fixed_embeddings(captions, negatives)
        has_negative = None if negatives is None else _has_negative(captions, negatives)
        return embeddings, negative_embeddings, has_negative

    def encoder_step(self, data):
        """One step of the encoder warm-up stage: the matching loss (and the hard negative
        term) on the text and image encoders alone; G, D and S are untouched."""
        negatives = data["hard_negative_captions"] if self.hard_negative_weight > 0 else None
        self._encoder_step(data["images"], data["captions"], data["labels"], negatives,
                           trackers=self.encoder_trackers)
        return {name: tracker.result() for name, tracker in self.encoder_trackers.items()}

    def style_step(self, data):
        """One style-stage step: S learns to recover z from G(z, phi(t)); G and text frozen.

        With a style reconstruction weight, S also learns to reconstruct the batch's real images
        through the frozen G: G(S(x), phi(t_x)) ~ x (L1). G's images alone teach S only what
        G draws, and a real photo differs from them; this term teaches S to read real photos,
        which style transfer starts from. S sees both kinds of image in one call, so its
        BatchNorm statistics are those of the mix.

        Reference: Reed et al. 2016, section 4.4, L_style = E ||z - S(G(z, phi(t)))||^2; the
        reconstruction is BicycleGAN's cVAE-GAN term (Zhu et al. 2017) with G held fixed.
        """
        embeddings = (conditioning_vector(data["caption_embeddings"])
                      if "caption_embeddings" in data
                      else self.embed_captions(data["captions"], training=False))
        rows = _rows(embeddings)
        z = self.noise(rows)
        # S inverts the generator that draws for the user (the export pairs them).
        fake_images = self.sampling_generator((z, embeddings), training=False)
        reconstructs = self.style_reconstruction_weight > 0
        seen = (tf.concat([tf.cast(fake_images, data["images"].dtype), data["images"]], axis=0)
                if reconstructs else fake_images)
        reconstruction = tf.constant(0.0)
        with tf.GradientTape() as tape:
            styles = self.style_encoder(seen, training=True)
            loss = total = losses.style_loss(z, styles[:rows])
            if reconstructs:
                reconstructed = self.sampling_generator((styles[rows:], embeddings),
                                                        training=False)
                reconstruction = losses.reconstruction_loss(data["images"], reconstructed)
                total = loss + self.style_reconstruction_weight * reconstruction
            scaled_loss = _scaled(self.style_optimizer, total)
        _apply(self.style_optimizer, tape, scaled_loss, self.style_encoder.trainable_variables)
        self.style_trackers["style_loss"].update_state(loss)
        self.style_trackers["style_reconstruction_loss"].update_state(reconstruction)
        return {name: tracker.result() for name, tracker in self.style_trackers.items()}

    def _encoder_step(self, images, captions, labels, hard_negative_captions=None,
                      trackers=None):
        """Matching loss on the encoders; returns the captions' embeddings as constants, and
        those of the hard negative captions (None without them). Updates the "matching_loss"
        and "hard_negative_loss" of `trackers` (None: the GAN stage's).

        The loss pairs every example with every other of the global batch: under a strategy
        each replica computes it on the gathered embeddings of all replicas.
        """
        negative_embeddings, hard_loss = None, tf.constant(0.0)
        with tf.GradientTape() as tape:
            text_embeddings = self.embed_captions(captions, training=True)
            image_embeddings = self.image_encoder(images, training=True)
            loss = losses.matching_loss(replica_ops.gather(text_embeddings),
                                        replica_ops.gather(image_embeddings),
                                        None if self.same_class_negatives
                                        else replica_ops.gather(labels),
                                        margin=self.matching_margin)
            total_loss = loss
            if hard_negative_captions is not None:
                negative_embeddings = self.embed_captions(hard_negative_captions, training=True)
                valid = tf.cast(_has_negative(captions, hard_negative_captions), tf.float32)
                hard_loss = losses.hard_negative_loss(
                    *(replica_ops.gather(values) for values in (
                        text_embeddings, negative_embeddings, image_embeddings, valid)),
                    margin=self.matching_margin)
                total_loss = loss + self.hard_negative_weight * hard_loss
            scaled_loss = _scaled(self.encoder_optimizer, total_loss)
        _apply(self.encoder_optimizer, tape, scaled_loss, self._encoder_variables())
        trackers = self.trackers if trackers is None else trackers
        trackers["matching_loss"].update_state(loss)
        trackers["hard_negative_loss"].update_state(hard_loss)
        if negative_embeddings is not None:
            negative_embeddings = tf.stop_gradient(negative_embeddings)
        return tf.stop_gradient(text_embeddings), negative_embeddings

    def _fixed_embeddings(self, captions, hard_negative_captions=None):
        """The captions' embeddings (and their hard negatives') from encoders that do not
        train in this stage: a forward pass only, no matching loss."""
        embeddings = self.embed_captions(captions, training=False)
        negative_embeddings = (None if hard_negative_captions is None
                               else self.embed_captions(hard_negative_captions, training=False))
        return embeddings, negative_embeddings

    def _with_hard_wrong_texts(self, wrong_embeddings, negative_embeddings, has_negative):
        """D's wrong texts [N, E], `hard_negative_wrong_fraction` of them the example's own hard
        negative (where it has one) instead of another example's captions.

        The examples are spread evenly over the global batch by their row in it (every other
        row for 0.5), so a distributed step picks the rows one device picks.
        """
        rows = _rows(wrong_embeddings)
        chosen = replica_ops.local_rows(
            _evenly_spread(rows * replica_ops.replica_count(), self.hard_negative_wrong_fraction),
            rows)
        return tf.where((chosen & has_negative)[:, None], negative_embeddings, wrong_embeddings)

    def _discriminator_step(self, images, embeddings, wrong_embeddings, fake_images=None,
                            fake_embeddings=None, check_texts=None):
        """GAN-CLS: real/right = 1; real/wrong and fake/right = 0 (Algorithm 1, lines 6-9).

        `fake_images` [F, S, S, 3] with their texts `fake_embeddings` [F, E] are the G step's
        fakes (`shared_fakes`): G(z, right text) [N], then, with
        `interp_fakes_for_discriminator`, G(z, interpolated text) [N // 2]; texts None means
        `embeddings` (F = N). Images None draws them here, with noise of their own, as Reed's
        code does. `check_texts` (`_check_texts`) add the hard negative check, weighted; None
        leaves it out.
        """
        fake_embeddings = embeddings if fake_embeddings is None else fake_embeddings
        if fake_images is None:
            if self.interp_fakes_for_discriminator:
                fake_embeddings = tf.concat([embeddings, self._interpolated(embeddings)], axis=0)
            fake_images = self.generator((self.noise(_rows(fake_embeddings)), fake_embeddings),
                                         training=True)
        batch_size = _rows(images)
        images = self._augmented(images)
        fake_images = self._augmented_blocks(fake_images,
                                             (batch_size, _rows(fake_images) - batch_size))
        with tf.GradientTape() as tape:
            # The real images' features serve the right and the wrong text alike.
            real_features, real_logits, penalty = self._real_scores(images, embeddings)
            wrong_logits = self.discriminator.score(real_features, wrong_embeddings,
                                                    training=True)
            fake_logits = self.discriminator((fake_images, fake_embeddings), training=True)
            loss = self._d_loss(real_logits, wrong_logits, fake_logits, cls_weight=self.cls_weight)
            check_loss = (self._hard_negative_check(real_features, *check_texts)
                          if check_texts is not None else tf.constant(0.0))
            scaled_loss = _scaled(self.d_optimizer,
                                  loss + self.gradient_penalty_weight * penalty
                                  + self.hard_negative_check_weight * check_loss)
        _apply(self.d_optimizer, tape, scaled_loss, self.discriminator.trainable_variables)
        self.trackers["d_loss"].update_state(loss)
        self.trackers["d_real"].update_state(tf.sigmoid(real_logits))
        self.trackers["d_wrong"].update_state(tf.sigmoid(wrong_logits))
        self.trackers["d_fake"].update_state(tf.sigmoid(fake_logits))
        self.trackers["gradient_penalty"].update_state(penalty)
        self.trackers["hard_negative_check_loss"].update_state(check_loss)

    def _hard_negative_check(self, real_features, right, negative, valid):
        """`losses.hard_negative_check_loss` of D's scores of the real images' features [N, ...]
        with each of their k captions alone, `right`, and its hard negative, `negative` (both
        [N * k, E], example-major; `valid` [N * k])."""
        captions_per_image = _rows(right) // _rows(real_features)
        features = tf.repeat(real_features, captions_per_image, axis=0)
        return losses.hard_negative_check_loss(
            self.discriminator.score(features, right, training=True),
            self.discriminator.score(features, negative, training=True), valid,
            self.gan_loss)

    def _check_texts(self, data):
        """The texts of the hard negative check: (right [N * k, E], negative [N * k, E],
        valid [N * k]), example-major.

        Each of an example's k captions and its hard negative, each embedded alone, as G is
        conditioned on one caption when it draws for a user: one caption's negative changes
        what it names fully, where in the mean of k captions a replaced background is one
        caption's share. `valid`: whether the caption's negative differs from it. From the
        pipeline's table, or by the text encoder in inference mode.
        """
        if "caption_embeddings" in data:
            differs = data["hard_negative_differs"]
            captions, negatives = data["caption_embeddings"], data["hard_negative_embeddings"]
        else:
            captions, negatives = data["captions"], data["hard_negative_captions"]
            differs = tf.reduce_any(tf.not_equal(captions, negatives), axis=2)
        right, negative = (tf.reshape(values, (-1, values.shape[-1]))
                           for values in (captions, negatives))
        if "caption_embeddings" not in data:
            right, negative = (tf.stop_gradient(self.text_encoder(ids, training=False))
                               for ids in (right, negative))
        return (conditioning_vector(right[:, None]), conditioning_vector(negative[:, None]),
                tf.reshape(differs, (-1,)))

    def _real_scores(self, images, embeddings):
        """D on real images with their texts: (features, logits [N], MA-GP or 0 when off).

        MA-GP differentiates D's logits with respect to its inputs in a tape nested inside the
        D step's tape, which then differentiates the penalty with respect to D's weights.

        Reference: Tao et al. 2022 (DF-GAN), section 3.3 (matching-aware gradient penalty).
        """
        penalised = self.gradient_penalty_weight > 0
        # Off, the inner tape watches nothing and records nothing.
        with tf.GradientTape(watch_accessed_variables=False) as inner_tape:
            if penalised:
                inner_tape.watch([images, embeddings])
            features = self.discriminator.features(images, training=True)
            logits = self.discriminator.score(features, embeddings, training=True)
            # Each logit depends on its own example only (up to BatchNorm's batch statistics),
            # so the gradient of the sum holds every example's own gradient. The sum is over
            # the global batch, so that with synchronised BatchNorm the gradients are one
            # device's; every replica differentiates it and the all-reduce's gradient sums
            # their upstream gradients, hence the division by the replica count.
            total = replica_ops.sum_over_replicas(
                tf.reduce_sum(tf.cast(logits, tf.float32))) / replica_ops.replica_count()
        if not penalised:
            return features, logits, tf.constant(0.0)
        image_gradients, embedding_gradients = inner_tape.gradient(total, [images, embeddings])
        penalty = losses.gradient_penalty(image_gradients, embedding_gradients,
                                          power=self.gradient_penalty_power)
        return features, logits, penalty

    def _augmented(self, images):
        """What D sees of `images`: randomly translated under DiffAugment, else the images.

        Each image gets its own shift (per-replica rows of one global draw, `_draw`).
        """
        if self.diff_augment != "translation":
            return images
        bound = diff_augment.max_translation(images.shape[1])
        shifts = self._draw(keras.random.randint, _rows(images), 2, minval=-bound,
                            maxval=bound + 1, dtype="int32")
        return diff_augment.translate(images, shifts)

    def _augmented_blocks(self, images, sizes):
        """`_augmented` on consecutive blocks of `images` ([N, S, S, 3]) of the given row counts,
        each block with its own draw of shifts.

        A block (the batch's fakes, the interpolated texts' fakes) stands for its own rows of the
        global batch under a strategy; one draw over the concatenated rows would give a replica
        the shifts one device gives other examples.
        """
        if self.diff_augment != "translation":
            return images[:sum(sizes)]
        blocks, start = [], 0
        for size in sizes:
            if size:
                blocks.append(self._augmented(images[start:start + size]))
                start += size
        return tf.concat(blocks, axis=0)

    def _update_ema(self):
        """After a G step: average <- decay * average + (1 - decay) * G for G's trained weights,
        and G's BatchNorm statistics copied.

        Under a strategy the assignment runs in cross-replica context (`merge_call`), each
        replica's copy of the average from that replica's copy of G, as the optimizers update
        mirrored variables; outside a strategy `maybe_merge_call` calls it directly.
        """
        if self.ema_generator is None:
            return
        decay = self.ema_decay
        pairs = [(average.value, weight.value, weight.trainable) for average, weight
                 in zip(self.ema_generator.weights, self.generator.weights)]

        def update(strategy):
            for average, weight, trainable in pairs:
                strategy.extended.update(average, _moving_average if trainable else _copy,
                                         args=(weight, decay), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(update, tf.distribute.get_strategy())

    def _generator_step(self, embeddings, images=None, drawn=None, texts=None):
        """Fool D on the batch's texts and, for GAN-INT, on interpolated ones (section 4.3).

        Like Reed's code, the interpolated embeddings extend G's batch by half: they mix
        adjacent examples (2i, 2i + 1) and enter G's loss only, never D's. With a mode-seeking
        weight, G also draws the first text of each adjacent pair again with fresh noise
        ("twins"), which enter only the mode-seeking term. Batches are shuffled, so adjacent
        pairs are as random as Reed's halves, and they never cross a replica's slice.
        `images` (the real batch) are needed only with a reconstruction weight (`_style_terms`).
        `drawn`: G's forward pass of this step (`_draw_fakes`), already shown to D; None draws
        it here. `texts`: the batch's hard negatives and labels (`_BatchTexts`), for the
        matching and recombined-text terms; the matching term without them scores the fakes
        against the batch's other texts only.
        """
        drawn = self._draw_fakes(embeddings, texts) if drawn is None else drawn
        batch_size, scored = drawn.batch_size, _rows(drawn.conditioning)
        fake_images, noise = drawn.fake_images, drawn.noise
        with drawn.tape:
            seen = self._augmented_blocks(fake_images, (batch_size, scored - batch_size))
            fake_logits = self.discriminator((seen, drawn.conditioning), training=True)
            g_loss = self._g_loss(fake_logits[:batch_size])
            recombined_start = scored - drawn.recombined_rows
            # One image-encoder call for every row a matching term scores: the batch's fakes,
            # then the recombined texts' (none without them).
            image_embeddings = (self.image_encoder(tf.concat(
                [fake_images[:batch_size], fake_images[recombined_start:scored]], axis=0),
                training=False) if self.generator_matching_weight > 0 else None)
            interp_loss = (self._interp_loss(fake_logits[batch_size:recombined_start])
                           if self.interp_weight > 0 else tf.constant(0.0))
            recombined_loss = (self._recombined_loss(
                fake_logits[recombined_start:],
                None if image_embeddings is None else image_embeddings[batch_size:],
                drawn.conditioning[recombined_start:], embeddings[0::2], texts.has_negative[0::2])
                if drawn.recombined_rows else tf.constant(0.0))
            mode_seeking_loss = (losses.mode_seeking_loss(
                fake_images[:batch_size:2], fake_images[scored:], noise[:batch_size:2],
                drawn.twin_noise, sum_over_replicas=replica_ops.sum_over_replicas)
                if self.mode_seeking_weight > 0 else tf.constant(0.0))
            matching_loss = (self._generator_matching(image_embeddings[:batch_size], embeddings,
                                                      texts)
                             if self.generator_matching_weight > 0 else tf.constant(0.0))
            loss = (g_loss + self.interp_weight * interp_loss
                    + self.mode_seeking_weight * mode_seeking_loss
                    + self.generator_matching_weight * matching_loss
                    + self.recombined_text_weight * recombined_loss
                    + self._style_terms(noise[:batch_size], fake_images[:batch_size], images,
                                        embeddings))
            scaled_loss = _scaled(self.g_optimizer, loss)
        self._apply_generator(drawn.tape, scaled_loss)
        self.trackers["g_loss"].update_state(g_loss)
        self.trackers["interp_loss"].update_state(interp_loss)
        self.trackers["mode_seeking_loss"].update_state(mode_seeking_loss)
        self.trackers["generator_matching_loss"].update_state(matching_loss)
        self.trackers["recombined_text_loss"].update_state(recombined_loss)

    def _generator_matching(self, image_embeddings, embeddings, texts=None):
        """G's matching term: its images of the batch's texts [N, E], embedded by the image
        encoder in inference mode (`image_embeddings` [N, E]), against every text of the global
        batch (`losses.matching_loss`, image-to-text and text-to-image) and, weighted as in the
        encoders' loss, against their own hard negatives (`losses.hard_negative_loss`). Only
        G's weights take the step, so the term teaches G what the encoders learnt:
        which text an image shows (Xu et al. 2018, AttnGAN, section 3.3: the DAMSM loss).
        """
        labels = None if texts is None or self.same_class_negatives else texts.labels
        loss = losses.matching_loss(
            replica_ops.gather(embeddings), replica_ops.gather(image_embeddings),
            None if labels is None else replica_ops.gather(labels), margin=self.matching_margin)
        if texts is None or texts.negative_embeddings is None or self.hard_negative_weight == 0:
            return loss
        valid = tf.cast(texts.has_negative, tf.float32)
        return loss + self.hard_negative_weight * losses.hard_negative_loss(
            *(replica_ops.gather(values) for values in (
                embeddings, texts.negative_embeddings, image_embeddings, valid)),
            margin=self.matching_margin)

    def _draw_fakes(self, embeddings, texts=None):
        """G's forward pass of a generator step, on a tape that the step's loss continues.

        G draws, in this row order: the batch's texts [N], GAN-INT's interpolated texts
        [N // 2] (with an interpolation weight), the recombined texts of the even rows [N // 2]
        (with a recombined-text weight; `texts` must then hold the batch's hard negatives;
        every other row, so that replicas pick the rows one device picks) and the
        mode-seeking twins [N // 2] (with a mode-seeking weight), each with noise of its own.
        """
        batch_size = _rows(embeddings)
        conditioning, noise = embeddings, self.noise(batch_size)
        if self.interp_weight > 0:
            interpolated = self._interpolated(embeddings)
            conditioning = tf.concat([embeddings, interpolated], axis=0)
            noise = tf.concat([noise, self.noise(_rows(interpolated))], axis=0)
        recombined_rows = 0
        if self.recombined_text_weight > 0:
            recombined = _recombined(embeddings[0::2], texts.negative_embeddings[0::2],
                                     texts.has_negative[0::2])
            recombined_rows = _rows(recombined)
            conditioning = tf.concat([conditioning, recombined], axis=0)
            noise = tf.concat([noise, self.noise(recombined_rows)], axis=0)
        generator_inputs, twin_noise = (noise, conditioning), None
        if self.mode_seeking_weight > 0:
            twins = embeddings[0::2]
            twin_noise = self.noise(_rows(twins))
            generator_inputs = (tf.concat([noise, twin_noise], axis=0),
                                tf.concat([conditioning, twins], axis=0))
        tape = tf.GradientTape()
        with tape:
            fake_images = self.generator(generator_inputs, training=True)
        return _DrawnFakes(tape, fake_images, noise, conditioning, twin_noise, batch_size,
                           recombined_rows)

    def _recombined_loss(self, logits, image_embeddings, recombined, sources, has_negative):
        """G's term for the images it drew for recombined texts: D's score of each with its
        text (as G's loss of the batch's fakes) and, with a generator matching weight, the image
        encoder's preference for the recombined text over the caption it came from
        (`losses.hard_negative_loss` with the roles turned: the source caption is the negative).

        The recombined texts swap or replace attribute words of training captions, so some are
        pairings no training image shows (on the built-in data, some of the test split's): G
        learns to draw them from D's and the encoders' judgement alone, as GAN-INT's
        interpolated texts are learnt from D's.

        Args:
            logits: [M] D's logits of the images with their recombined texts.
            image_embeddings: [M, E] G's images of the recombined texts, embedded by the image
                encoder in inference mode (None without a generator matching weight).
            recombined: [M, E] the recombined texts (a source caption where it has none).
            sources: [M, E] the captions they came from.
            has_negative: bool [M] whether the row's text is recombined.

        Returns:
            float32 scalar.
        """
        loss = self._g_loss(logits)
        if self.generator_matching_weight > 0:
            loss += self.generator_matching_weight * losses.hard_negative_loss(
                recombined, sources, image_embeddings, has_negative,
                margin=self.matching_margin)
        return loss

    def _trains_style(self):
        """Whether S trains in the GAN stage (a latent regression or reconstruction weight)."""
        return self.latent_regression_weight > 0 or self.reconstruction_weight > 0

    def _style_terms(self, z, fake_images, images, embeddings):
        """The weighted style terms of the generator step (0. when they are off).

        Latent regression (cLR) reuses G's fakes of the batch's texts; reconstruction draws
        G(S(x), phi(t_x)) in a call of its own, so that G's BatchNorm statistics of the
        adversarial batch stay those of noise drawn from N(0, I). The prior term depends on S
        only, so it adds nothing to G's gradient.

        Args:
            z: [N, Z] the noise of `fake_images`.
            fake_images: [N, S, S, 3] G(z, embeddings).
            images: [N, S, S, 3] the real images of the batch.
            embeddings: [N, E] their texts' embeddings (constants).

        Returns:
            float32 scalar, the sum of the weighted terms.

        Reference: Zhu et al. 2017 (BicycleGAN), sections 3.2-3.4.
        """
        total = latent = reconstruction = prior = tf.constant(0.0)
        if self.latent_regression_weight > 0:
            latent = losses.latent_regression_loss(
                z, self.style_encoder(fake_images, training=True))
            total += self.latent_regression_weight * latent
        if self.reconstruction_weight > 0:
            styles = self.style_encoder(images, training=True)
            reconstructed = self.generator((styles, embeddings), training=True)
            reconstruction = losses.reconstruction_loss(images, reconstructed)
            total += self.reconstruction_weight * reconstruction
            if self.style_prior_weight > 0:
                prior = losses.style_prior_loss(styles)
                total += self.style_prior_weight * prior
        for name, value in (("latent_regression_loss", latent),
                            ("reconstruction_loss", reconstruction), ("style_prior_loss", prior)):
            self.trackers[name].update_state(value)
        return total

    def _apply_generator(self, tape, scaled_loss):
        """G's update and, when S trains in the GAN stage, S's, from one backward pass.

        Only the style terms of G's loss depend on S, so its gradient with respect to S's
        weights is S's loss's. It carries G's optimizer's loss scale (float16), converted here to
        the style optimizer's, which unscales it.
        """
        generator_variables = self.generator.trainable_variables
        if not self._trains_style():
            _apply(self.g_optimizer, tape, scaled_loss, generator_variables)
            return
        style_variables = self.style_encoder.trainable_variables
        gradients = tape.gradient(scaled_loss, generator_variables + style_variables)
        split = len(generator_variables)
        self.g_optimizer.apply_gradients(zip(gradients[:split], generator_variables))
        ratio = self.style_optimizer.scale_loss(1.0) / self.g_optimizer.scale_loss(1.0)
        self.style_optimizer.apply_gradients(
            zip([gradient * ratio for gradient in gradients[split:]], style_variables))

    def _interpolated(self, embeddings):
        """[N // 2, E] embeddings between (or beyond) the texts of adjacent examples."""
        pairs = _rows(embeddings) // 2
        first, second = embeddings[0:2 * pairs:2], embeddings[1:2 * pairs:2]
        if self.interp_type == "extrapolate":
            alpha = self._draw(keras.random.uniform, pairs, 1, minval=-1.0, maxval=1.0)
            return losses.extrapolate_embeddings(first, second, alpha)
        return losses.interpolate_embeddings(first, second, self.interp_beta)

    def _encoder_variables(self):
        return self.text_encoder.trainable_variables + self.image_encoder.trainable_variables

    def get_config(self):
        config = super().get_config()
        config.update(
            text_encoder=keras.saving.serialize_keras_object(self.text_encoder),
            image_encoder=keras.saving.serialize_keras_object(self.image_encoder),
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            style_encoder=keras.saving.serialize_keras_object(self.style_encoder),
            cls_weight=self.cls_weight, interp_weight=self.interp_weight,
            interp_beta=self.interp_beta, interp_type=self.interp_type,
            interp_fakes_for_discriminator=self.interp_fakes_for_discriminator,
            mode_seeking_weight=self.mode_seeking_weight, matching_margin=self.matching_margin,
            same_class_negatives=self.same_class_negatives,
            hard_negative_weight=self.hard_negative_weight,
            hard_negative_wrong_fraction=self.hard_negative_wrong_fraction, seed=self.seed,
            gan_loss=self.gan_loss, gradient_penalty_weight=self.gradient_penalty_weight,
            gradient_penalty_power=self.gradient_penalty_power, diff_augment=self.diff_augment,
            ema_generator=(None if self.ema_generator is None
                           else keras.saving.serialize_keras_object(self.ema_generator)),
            ema_decay=self.ema_decay, latent_regression_weight=self.latent_regression_weight,
            reconstruction_weight=self.reconstruction_weight,
            style_prior_weight=self.style_prior_weight, train_encoders=self.train_encoders,
            shared_fakes=self.shared_fakes,
            hard_negative_check_weight=self.hard_negative_check_weight,
            generator_matching_weight=self.generator_matching_weight,
            recombined_text_weight=self.recombined_text_weight,
            style_reconstruction_weight=self.style_reconstruction_weight)
        return config

    @classmethod
    def from_config(cls, config):
        for name in ("text_encoder", "image_encoder", "generator", "discriminator",
                     "style_encoder"):
            config[name] = keras.saving.deserialize_keras_object(config[name])
        if config.get("ema_generator") is not None:
            config["ema_generator"] = keras.saving.deserialize_keras_object(
                config["ema_generator"])
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class _DrawnFakes:
    """G's forward pass of a generator step (`TextToImageGAN._draw_fakes`).

    Attributes:
        tape: the gradient tape that recorded it; the step's loss is recorded on it too.
        fake_images: [N + 3 * (N // 2), S, S, 3] (fewer rows without GAN-INT, recombined
            texts or twins).
        noise: [N (+ N // 2) (+ N // 2), Z] the noise of the batch's, the interpolated and the
            recombined texts' fakes.
        conditioning: [N (+ N // 2) (+ N // 2), E] their texts: the rows that D scores.
        twin_noise: [N // 2, Z] the twins' noise, or None without a mode-seeking weight.
        batch_size: N.
        recombined_rows: M, the recombined texts' rows, the last M of `conditioning`.
    """

    tape: tf.GradientTape
    fake_images: tf.Tensor
    noise: tf.Tensor
    conditioning: tf.Tensor
    twin_noise: tf.Tensor | None
    batch_size: int
    recombined_rows: int = 0

    def discriminator_fakes(self, with_interpolated=False):
        """(images [N, S, S, 3], texts [N, E]) of the batch's texts, as constants for the D step;
        `with_interpolated` appends GAN-INT's rows ([N // 2] each)."""
        end = (_rows(self.conditioning) - self.recombined_rows if with_interpolated
               else self.batch_size)
        return (tf.stop_gradient(self.fake_images[:end]),
                tf.stop_gradient(self.conditioning[:end]))


@dataclasses.dataclass(frozen=True)
class _BatchTexts:
    """What the generator step's matching term needs of a batch besides its embeddings.

    Attributes:
        negative_embeddings: [N, E] the examples' hard negative texts, or None without them.
        has_negative: bool [N] whether an example has one, or None.
        labels: int32 [N] class ids: other examples of the same class are no negatives.
    """

    negative_embeddings: tf.Tensor | None
    has_negative: tf.Tensor | None
    labels: tf.Tensor


def conditioning_vector(caption_embeddings):
    """float32 [N, E]: the mean of each example's k caption embeddings [N, k, E], rescaled to
    the text encoder's norm sqrt(E), so that one caption at inference time and the mean of k at
    training time condition G at the same scale (Reed et al. 2016, section 5: the mean of 4)."""
    mean = keras.ops.cast(keras.ops.mean(caption_embeddings, axis=1), "float32")
    norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(mean), axis=-1, keepdims=True))
    return mean * (keras.ops.shape(mean)[-1] ** 0.5 / keras.ops.maximum(norm, 1e-12))


def _recombined(embeddings, negative_embeddings, has_negative):
    """[M, E]: each example's hard negative text where it has one, else its own text."""
    return tf.where(has_negative[:, None], negative_embeddings, embeddings)


def _rows(values):
    """The batch size of `values`: static where known (a replica's batch always is)."""
    return values.shape[0] or tf.shape(values)[0]


def _has_negative(captions, hard_negative_captions):
    """bool [N]: whether any of an example's k hard negative captions differs from its caption
    (a caption without attribute words is its own "negative")."""
    return tf.reduce_any(tf.not_equal(captions, hard_negative_captions), axis=[1, 2])


def _evenly_spread(rows, fraction):
    """bool [rows]: floor(rows * fraction) rows spread evenly (row g where floor((g + 1) f)
    exceeds floor(g f))."""
    index = tf.range(rows, dtype=tf.float32)
    return tf.floor((index + 1.0) * fraction) > tf.floor(index * fraction)


def _scaled(optimizer, loss):
    """The loss to differentiate: this replica's share of the global mean, loss-scaled.

    Each replica's loss is the mean over its own examples, and `apply_gradients` sums the
    replicas' gradients, so each share is divided by the number of replicas (1 on one device).
    Under float16 the loss scale must be applied inside the tape: scaling a loss the tape did
    not record gives None gradients.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return optimizer.scale_loss(loss / replicas if replicas > 1 else loss)


def _moving_average(average, weight, decay):
    return average.assign(decay * average + (1.0 - decay) * weight)


def _copy(average, weight, decay):
    del decay  # BatchNorm statistics are copied, not averaged.
    return average.assign(weight)


def _apply(optimizer, tape, scaled_loss, variables):
    """One optimizer update from `_scaled(optimizer, loss)`, computed inside `tape`."""
    gradients = tape.gradient(scaled_loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))
