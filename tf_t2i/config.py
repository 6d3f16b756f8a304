"""Configuration: frozen dataclasses and named presets.

A `Config` has three parts: `data` (what is read and how it is batched), `model` (layer sizes) and
`train` (optimisation, losses, schedule). Presets are complete configurations; command-line
overrides replace single fields with `section.field=value` (see `apply_overrides`).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

# Reed et al.'s char-CNN-RNN alphabet (icml2016 `util.lua`), in its order. Ids: 0 is padding,
# 1 is any character outside the alphabet, then one id per distinct character here.
REED_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{} "

DATA_FORMATS = ("synthetic", "reed", "jsonl")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "multiworker")
UPSAMPLINGS = ("transpose", "nearest", "nearest_output")
INTERPOLATIONS = ("interpolate", "extrapolate")
GENERATOR_CONDITIONINGS = ("concat", "affine", "attention")
TEXT_SLOT_VALUES = ("states", "local")
TEXT_SLOT_SOFTMAXES = ("positions", "slots")
DISCRIMINATOR_CONDITIONINGS = ("concat", "projection")
GAN_LOSSES = ("bce", "hinge")
DIFF_AUGMENTS = ("", "translation")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What is read and how it is batched.

    Attributes:
        format: "synthetic" (built in, no download), "reed" (text_c10 layout) or "jsonl".
        path: the dataset folder; unused for "synthetic".
        image_size: side of the square training images (32, 64 or 128).
        resize_margin: images are resized to `image_size * resize_margin` before a random crop
            (Reed: 76 / 64).
        flip: random horizontal flips.
        captions_per_image: k captions whose mean embedding conditions an image (Reed: 4).
        caption_length: characters per encoded caption (Reed: 201).
        alphabet: the character vocabulary.
        batch_size: examples per step (fixed; the last partial batch is dropped).
        shuffle_buffer: no longer used: every epoch shuffles the whole training split in
            memory (tf_t2i.data.pipeline); kept so configurations of earlier runs still read.
        synthetic_images_per_class: images drawn for each synthetic class.
        seed: seed for dataset generation and the pipeline's random choices.
        attribute_words: words that hard negative captions swap or replace, added to those
            discovered in the training captions: comma-separated words or a text file, one
            word per line; "" = discovered ones only (tf_t2i.data.attribute_words).
        attribute_min_count: a discovered attribute word occurs in the captions of at least
            this many images.
        attribute_min_score: a discovered attribute word scores at least this many nats: the
            information it gives about the class, or the mutual information of its occurrences
            in two captions of one image (tf_t2i.data.attribute_words).
        hard_negative_swap_share: of the captions with two or more attribute phrases, the share
            whose hard negative swaps two of them; the others get a replacement of one phrase
            (tf_t2i.data.hard_negatives). 1 = swaps wherever a caption has two phrases.
    """

    format: str = "synthetic"
    path: str | None = None
    image_size: int = 64
    resize_margin: float = 76 / 64
    flip: bool = True
    captions_per_image: int = 4
    caption_length: int = 201
    alphabet: str = REED_ALPHABET
    batch_size: int = 64
    shuffle_buffer: int = 4096
    synthetic_images_per_class: int = 40
    seed: int = 0
    attribute_words: str = ""
    attribute_min_count: int = 10
    attribute_min_score: float = 0.2
    hard_negative_swap_share: float = 1.0

    @property
    def load_size(self) -> int:
        """Side to which images are resized before the random crop."""
        return int(round(self.image_size * self.resize_margin))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Layer sizes of the text encoder, image encoder, generator, discriminator and style encoder.

    Attributes:
        z_dim: noise dimension (Reed: 100).
        embedding_dim: text/image joint embedding size (Reed: 1024).
        text_projection_dim: the embedding is projected to this size inside G and D (Reed: 128).
        ngf: generator width (Reed: 128).
        ndf: discriminator width (Reed: 64).
        upsampling: "transpose" (Reed), "nearest" (nearest-neighbour + 3x3 conv, TensorLayer
            port; computed as a transposed convolution, `NearestUpsamplingConv2D`, at the same
            FLOPs as "transpose") or "nearest_output" (Reed's transposed convolutions but the
            last, to RGB, which is nearest-neighbour + conv).
        char_embedding_dim: size of the learned character embedding in the text encoder.
        text_conv_filters: filters of the char-CNN's temporal convolutions (Reed: 384, 512, 512).
        text_rnn_units: GRU units on top of the char-CNN.
        image_encoder_filters: widths of the image encoder's stride-2 convolutions.
        style_encoder_filters: widths of the style encoder's stride-2 convolutions.
        minibatch_stddev: give D the batch's feature standard deviation (not in Reed's design;
            counters a generator that ignores z).
        generator_conditioning: "concat" (Reed: [z, t] enters G's first layer only), "affine"
            (also a text-conditioned scale and shift after every BatchNorm of G; DF-GAN) or
            "attention" (from 8x8 on, a scale and shift per pixel from attention over the
            embedding read as `text_tokens` tokens; AttnGAN / SPADE-style; `Generator`).
        text_tokens: the tokens G's "attention" conditioning splits the embedding into; must
            divide `embedding_dim`.
        text_slots: 0 (Reed: the text encoder averages its GRU outputs) or the number of
            attention slots the text encoder's embedding is made of (`TextEncoder`); set
            `text_tokens` to the same number so that G reads one slot per token.
        text_slot_values: what those slots read: "states" (the GRU outputs, which carry the
            whole caption so far) or "local" (the first convolution's outputs, a few words; the
            GRU still chooses where each slot reads). Used only with `text_slots`.
        text_slot_softmax: how those slots attend: "positions" (each slot on its own; with
            the default preset's encoder all of them read the petal colour) or "slots" (they
            compete for the caption's positions, as in Slot Attention, and read different
            words). Used only with `text_slots`.
        discriminator_conditioning: "concat" (Reed: text replicated and concatenated at 4x4) or
            "projection" (Reed's concat plus the projection term <W t, sum-pooled features>;
            Miyato & Koyama 2018).
        spectral_norm: spectral normalisation of every convolution and dense layer of D
            (Miyato et al. 2018); D's BatchNorms stay unless `discriminator_batch_norm` is off.
        discriminator_batch_norm: BatchNorm in D (Reed: on); off suits `spectral_norm`, as in
            SN-GAN and DF-GAN, whose discriminators have none.
        text_batch_norm: BatchNorm on the text encoder's mean GRU state, before its projection
            (not in Reed's design): without it every caption starts with nearly the same
            embedding, and the matching loss sits on a plateau for 50 to 250 steps, by the seed.
            On in the `default` preset.
    """

    z_dim: int = 100
    embedding_dim: int = 1024
    text_projection_dim: int = 128
    ngf: int = 128
    ndf: int = 64
    upsampling: str = "transpose"
    char_embedding_dim: int = 64
    text_conv_filters: tuple[int, ...] = (384, 512, 512)
    text_rnn_units: int = 512
    image_encoder_filters: tuple[int, ...] = (64, 128, 256, 512)
    style_encoder_filters: tuple[int, ...] = (64, 128, 256, 512)
    minibatch_stddev: bool = False
    generator_conditioning: str = "concat"
    text_tokens: int = 4
    text_slots: int = 0
    text_slot_values: str = "states"
    text_slot_softmax: str = "positions"
    discriminator_conditioning: str = "concat"
    spectral_norm: bool = False
    discriminator_batch_norm: bool = True
    text_batch_norm: bool = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, loss weights and schedule.

    Attributes:
        learning_rate: Adam learning rate for G, D and the encoders (Reed: 2e-4).
        beta_1: Adam beta_1 (Reed: 0.5).
        lr_decay_every_epochs: the learning rate halves every this many epochs (Reed: 100); 0 = never.
        epochs: training epochs; ignored when `steps` is set.
        steps: total GAN steps; overrides `epochs` when > 0.
        cls_weight: weight of the {real image, wrong text} term in D's loss (Reed: 0.5).
        interp_weight: weight of the GAN-INT term in G's loss (Reed: 1.0); 0 disables GAN-INT.
        interp_beta: mixing weight beta of interpolated embeddings (Reed: 0.5).
        interp_type: "interpolate" (beta * t1 + (1 - beta) * t2) or "extrapolate" (Reed's
            interp_type=2: t1 + alpha * (t1 - t2), alpha ~ U(-1, 1)).
        interp_fakes_for_discriminator: D also learns G's images of GAN-INT's interpolated
            texts as fake (with those texts), not only the batch's fakes; needs GAN-INT. Off
            (Reed), D never sees an interpolated text, and G can fool it there with images no
            real one resembles (docs/BENCHMARKS.md, session 17: noise-like samples).
        mode_seeking_weight: weight of a mode-seeking term in G's loss (Mao et al. 2019; not
            in Reed's design; 0 = off): pushes G to use z, which style transfer needs.
        matching_margin: margin of the text/image hinge matching loss.
        same_class_negatives: other images of the same class are negatives of the matching loss
            too (instance-level), so the embedding also tells apart what the class leaves free,
            such as a background the caption names; False (Reed's class-level structure) leaves
            them out.
        gan_loss: "bce" (Reed's GAN-CLS cross-entropy) or "hinge" (DF-GAN, Tao et al. 2022).
        gradient_penalty_weight: weight of the matching-aware gradient penalty (MA-GP, DF-GAN:
            2) on D's gradient w.r.t. real images and their matching text; 0 = off.
        gradient_penalty_power: the power p of MA-GP's gradient norm (DF-GAN: 6).
        diff_augment: "" (off) or "translation": DiffAugment (Zhao et al. 2020) random
            translation of every image D sees, real and fake alike.
        ema_decay: decay of an exponential moving average of G's weights used for sampling,
            evaluation and export (typical 0.999); 0 = off (G itself is used).
        beta_2: Adam beta_2 (Keras default 0.999; DF-GAN: 0.9).
        d_learning_rate: D's Adam learning rate; 0 = `learning_rate` (DF-GAN: 4 x G's).
        hard_negative_weight: weight of the hard negative term in the matching loss (not in
            Reed's design; 0 = off): each image's caption with its attribute words swapped or
            replaced (tf_t2i.data.hard_negatives) is one more negative text, with the margin.
        hard_negative_wrong_fraction: this fraction of D's {real image, wrong text} examples
            use the image's hard negative caption as the wrong text (0 = off, Reed's design).
        hard_negative_check_weight: weight of a term in D's loss (not in Reed's design; 0 =
            off): each real image with each of its k captions is real, with that caption's hard
            negative wrong, single captions rather than the mean of k, so that a negative that
            replaces one attribute (`data.hard_negative_swap_share` < 1) is wholly wrong; it did
            not make D check the background (docs/BENCHMARKS.md, session 6).
        generator_matching_weight: weight of a term in G's loss (not in Reed's design; 0 =
            off): G's images, embedded by the image encoder, must match their texts against the
            batch's other texts and their hard negatives, as the encoders learnt to (AttnGAN's
            DAMSM sentence loss); best with trained, frozen encoders (`encoder_warmup_steps`).
        recombined_text_weight: weight of a term in G's loss (not in Reed's design; 0 = off):
            G also draws, with noise of its own, the hard negative captions of every other example
            (new combinations of its attribute words), judged by D with those texts and, with
            `generator_matching_weight`, by the image encoder against the caption each came from.
        latent_regression_weight: weight of BicycleGAN's cLR term mean |z - S(G(z, t))| (L1) in
            the GAN stage, updating G and the style encoder S (not in Reed's design; 0 = off).
        reconstruction_weight: weight of the L1 reconstruction mean |x - G(S(x), phi(t_x))| of
            real images in the GAN stage, updating G and S, so that S reads real images (cVAE-GAN
            style; not in Reed's design; 0 = off).
        style_prior_weight: weight of a moment-matching term keeping S(x) of real images
            distributed like N(0, I), G's noise (needs reconstruction_weight > 0; 0 = off).
        style_reconstruction_weight: weight of the L1 reconstruction mean |x - G(S(x), phi(t_x))|
            of real images in the style stage, where G is frozen and only S learns, so that S
            reads real photos as well as G's images (not in Reed's design; 0 = off).
        encoder_warmup_steps: steps of an encoder warm-up stage before the GAN stage: the text
            and image encoders alone learn the matching loss (and the hard negative term), as
            Reed et al. pretrain phi before the GAN; 0 skips it (joint training only).
        encoder_learning_rate: the encoders' Adam learning rate; 0 = `learning_rate`.
        freeze_encoders: the encoders stop training when the GAN stage starts (Reed: phi is
            pretrained and fixed), which also saves their backward pass; needs a warm-up.
        style_steps: steps of the style-encoder stage after the GAN stage; 0 skips it.
        conditioning_captions: captions whose mean embedding conditions G and D in the GAN and
            style stages; 0 = `data.captions_per_image` (Reed: the mean of 4, as in the
            warm-up). 1 trains G on single captions, as it is asked to draw them: a caption
            that names no background then leaves it to z (not in Reed's design).
        shared_fakes: D's step trains on the fakes G draws for its own step, so that G runs
            forward once per step, as PyTorch's DCGAN example does (not Reed's code, whose D
            step draws fakes of its own: one more G forward pass per step).
        precision: Keras dtype policy: "auto" (resolved once at start-up: mixed_bfloat16 where
            the CPU or GPU has native bfloat16, else float32; see `tf_t2i.precision`), "float32",
            "mixed_bfloat16" or "mixed_float16" (with loss scaling).
        jit_compile: compile the train step with XLA (the GRU then avoids cuDNN).
        steps_per_execution: at most this many train steps per compiled call (a call also ends
            at every logging, sampling and checkpoint step). Metrics and finiteness are read
            only at those events, so the host never waits for the device between steps.
        strategy: "default" (one device), "mirrored" (every local GPU, or logical CPU devices)
            or "multiworker" (a cluster described by TF_CONFIG); see `tf_t2i.distribution`.
        sync_batch_norm: synchronise BatchNorm statistics across replicas.
        sample_every: steps between sample grids.
        checkpoint_every: steps between checkpoints.
        log_every: steps between TensorBoard scalar writes.
        eval_every: GAN steps between quality metrics on a fixed test sample (also at the end of
            each stage; tf_t2i.evaluation.training_evaluator); 0 = off.
        eval_metrics: comma-separated metric names (tf_t2i.evaluation.quality_metrics) or "all";
            metrics whose needs are missing are skipped with one line.
        eval_images: size of the fixed test sample the metrics use.
        evaluator: folder of an evaluator (`evaluate.py train-evaluator`) for R-precision and
            domain FID during training; "" = none.
        best_metric: keep the best weights by this metric as checkpoints/best.weights.h5
            (e.g. "attribute_accuracy", "fid_domain"); "" = none.
        diversity_warning: warn when generated images of one caption vary less than this
            fraction of real images of one class (mode collapse).
    """

    learning_rate: float = 2e-4
    beta_1: float = 0.5
    lr_decay_every_epochs: int = 100
    epochs: int = 600
    steps: int = 0
    cls_weight: float = 0.5
    interp_weight: float = 1.0
    interp_beta: float = 0.5
    interp_type: str = "interpolate"
    interp_fakes_for_discriminator: bool = False
    mode_seeking_weight: float = 0.0
    matching_margin: float = 0.2
    same_class_negatives: bool = False
    gan_loss: str = "bce"
    gradient_penalty_weight: float = 0.0
    gradient_penalty_power: float = 6.0
    diff_augment: str = ""
    ema_decay: float = 0.0
    beta_2: float = 0.999
    d_learning_rate: float = 0.0
    hard_negative_weight: float = 0.0
    hard_negative_wrong_fraction: float = 0.0
    hard_negative_check_weight: float = 0.0
    generator_matching_weight: float = 0.0
    recombined_text_weight: float = 0.0
    latent_regression_weight: float = 0.0
    reconstruction_weight: float = 0.0
    style_prior_weight: float = 0.0
    style_reconstruction_weight: float = 0.0
    encoder_warmup_steps: int = 0
    encoder_learning_rate: float = 0.0
    freeze_encoders: bool = False
    style_steps: int = 0
    conditioning_captions: int = 0
    shared_fakes: bool = False
    precision: str = "auto"
    jit_compile: bool = False
    steps_per_execution: int = 10
    strategy: str = "default"
    sync_batch_norm: bool = False
    sample_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 50
    eval_every: int = 0
    eval_metrics: str = "all"
    eval_images: int = 500
    evaluator: str = ""
    best_metric: str = ""
    diversity_warning: float = 0.25

    @property
    def hard_negatives(self) -> bool:
        """Whether a train step needs the batches' hard negative captions."""
        return (self.hard_negative_weight > 0 or self.hard_negative_wrong_fraction > 0
                or self.hard_negative_check_weight > 0 or self.recombined_text_weight > 0)


@dataclasses.dataclass(frozen=True)
class Config:
    """A complete configuration: a preset name plus its three sections."""

    name: str = "custom"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        sections = {}
        for section, section_cls in (("data", DataConfig), ("model", ModelConfig),
                                     ("train", TrainConfig)):
            fields = dict(values.get(section, {}))
            known = {f.name: f for f in dataclasses.fields(section_cls)}
            unknown = set(fields) - set(known)
            if unknown:
                raise ValueError(f"config section '{section}' has unknown fields {sorted(unknown)}.")
            for name, value in fields.items():
                if isinstance(known[name].default, tuple):
                    fields[name] = tuple(value)
            sections[section] = section_cls(**fields)
        return cls(name=values.get("name", "custom"), **sections)

    def validate(self) -> "Config":
        """Raises ValueError (one sentence naming the field) for values no code path accepts."""
        checks = [
            (self.data.format in DATA_FORMATS, f"data.format must be one of {DATA_FORMATS}"),
            (self.data.format == "synthetic" or bool(self.data.path),
             f"--data is required for --format {self.data.format}: pass the dataset folder"),
            (self.data.image_size in (32, 64, 128), "data.image_size must be 32, 64 or 128"),
            (self.data.resize_margin >= 1.0, "data.resize_margin must be >= 1"),
            (self.data.captions_per_image >= 1, "data.captions_per_image must be >= 1"),
            (self.data.caption_length >= 8, "data.caption_length must be >= 8"),
            (self.data.batch_size >= 2, "data.batch_size must be >= 2 (GAN-CLS needs a wrong caption)"),
            (self.model.upsampling in UPSAMPLINGS, f"model.upsampling must be one of {UPSAMPLINGS}"),
            (self.model.generator_conditioning in GENERATOR_CONDITIONINGS,
             f"model.generator_conditioning must be one of {GENERATOR_CONDITIONINGS}"),
            (self.model.generator_conditioning != "attention" or (
                self.model.text_tokens >= 1
                and self.model.embedding_dim % self.model.text_tokens == 0),
             f"model.text_tokens ({self.model.text_tokens}) must divide model.embedding_dim "
             f"({self.model.embedding_dim})"),
            (self.model.text_slots >= 0 and (
                self.model.text_slots == 0
                or self.model.embedding_dim % self.model.text_slots == 0),
             f"model.text_slots ({self.model.text_slots}) must be 0 or divide "
             f"model.embedding_dim ({self.model.embedding_dim})"),
            (self.model.text_slot_values in TEXT_SLOT_VALUES,
             f"model.text_slot_values must be one of {TEXT_SLOT_VALUES}"),
            (self.model.text_slot_softmax in TEXT_SLOT_SOFTMAXES,
             f"model.text_slot_softmax must be one of {TEXT_SLOT_SOFTMAXES}"),
            (self.model.discriminator_conditioning in DISCRIMINATOR_CONDITIONINGS,
             f"model.discriminator_conditioning must be one of {DISCRIMINATOR_CONDITIONINGS}"),
            (self.train.precision in PRECISIONS, f"train.precision must be one of {PRECISIONS}"),
            (self.train.strategy in STRATEGIES, f"train.strategy must be one of {STRATEGIES}"),
            (self.train.steps_per_execution >= 1, "train.steps_per_execution must be >= 1"),
            (self.train.interp_type in INTERPOLATIONS,
             f"train.interp_type must be one of {INTERPOLATIONS}"),
            (not self.train.interp_fakes_for_discriminator or self.train.interp_weight > 0,
             "train.interp_fakes_for_discriminator needs GAN-INT (train.interp_weight > 0)"),
            (0.0 <= self.train.cls_weight <= 1.0, "train.cls_weight must be in [0, 1]"),
            (self.train.gan_loss in GAN_LOSSES, f"train.gan_loss must be one of {GAN_LOSSES}"),
            (self.train.gradient_penalty_weight >= 0.0,
             "train.gradient_penalty_weight must be >= 0 (0 = off)"),
            (self.train.gradient_penalty_power > 0.0, "train.gradient_penalty_power must be > 0"),
            (self.train.diff_augment in DIFF_AUGMENTS,
             f"train.diff_augment must be one of {DIFF_AUGMENTS} (\"\" = off)"),
            (0.0 <= self.train.ema_decay < 1.0, "train.ema_decay must be in [0, 1) (0 = off)"),
            (0.0 <= self.train.beta_2 < 1.0, "train.beta_2 must be in [0, 1)"),
            (self.train.d_learning_rate >= 0.0,
             "train.d_learning_rate must be >= 0 (0 = train.learning_rate)"),
            (self.train.steps > 0 or self.train.epochs > 0, "set train.steps or train.epochs > 0"),
            *_at_least(self.train, 0, "steps", "epochs", "style_steps", "lr_decay_every_epochs",
                       "encoder_warmup_steps"),
            (self.train.encoder_learning_rate >= 0.0,
             "train.encoder_learning_rate must be >= 0 (0 = train.learning_rate)"),
            (not self.train.freeze_encoders or self.train.encoder_warmup_steps > 0,
             "train.freeze_encoders needs train.encoder_warmup_steps > 0 (encoders frozen "
             "untrained would give G no text to follow)"),
            # Cadences; eval_every 0 means no metrics during training.
            *_at_least(self.train, 1, *(f.name for f in dataclasses.fields(self.train)
                                        if f.name.endswith("_every") and f.name != "eval_every")),
            (self.train.eval_every >= 0, "train.eval_every must be >= 0 (0 = no metrics)"),
            *_at_least(self.train, 0, "latent_regression_weight", "reconstruction_weight",
                       "style_prior_weight", "style_reconstruction_weight"),
            (self.train.style_prior_weight == 0 or self.train.reconstruction_weight > 0,
             "train.style_prior_weight needs train.reconstruction_weight > 0 (it regularises the "
             "style of real images, which only the reconstruction term computes)"),
            (self.train.eval_images >= 2, "train.eval_images must be >= 2"),
            (0.0 <= self.train.diversity_warning <= 1.0, "train.diversity_warning must be in [0, 1]"),
            (0 <= self.train.conditioning_captions <= self.data.captions_per_image,
             "train.conditioning_captions must be in [0, data.captions_per_image] "
             "(0 = all k)"),
            (self.train.hard_negative_weight >= 0.0, "train.hard_negative_weight must be >= 0"),
            (0.0 <= self.train.hard_negative_wrong_fraction <= 1.0,
             "train.hard_negative_wrong_fraction must be in [0, 1]"),
            (self.train.hard_negative_check_weight >= 0.0,
             "train.hard_negative_check_weight must be >= 0"),
            (self.train.generator_matching_weight >= 0.0,
             "train.generator_matching_weight must be >= 0 (0 = off)"),
            (self.train.recombined_text_weight >= 0.0,
             "train.recombined_text_weight must be >= 0 (0 = off)"),
            (self.data.attribute_min_count >= 1, "data.attribute_min_count must be >= 1"),
            (0.0 <= self.data.hard_negative_swap_share <= 1.0,
             "data.hard_negative_swap_share must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message + ".")
        return self


def _at_least(section, minimum: int, *names: str) -> list[tuple[bool, str]]:
    """Checks that `section.<name>` >= minimum, e.g. every cadence (`*_every`) >= 1 step."""
    label = type(section).__name__.removesuffix("Config").lower()
    return [(getattr(section, name) >= minimum,
             f"{label}.{name} must be >= {minimum} (got {getattr(section, name)})")
            for name in names]


def _tiny() -> Config:
    """Seconds per run: shared by the tests and smoke runs."""
    return Config(
        name="tiny",
        data=DataConfig(image_size=32, batch_size=8, caption_length=64, shuffle_buffer=256,
                        synthetic_images_per_class=4),
        model=ModelConfig(z_dim=16, embedding_dim=32, text_projection_dim=16, ngf=16, ndf=8,
                          char_embedding_dim=16, text_conv_filters=(32, 32), text_rnn_units=32,
                          image_encoder_filters=(16, 32), style_encoder_filters=(16, 32)),
        train=TrainConfig(steps=4, style_steps=2, sample_every=2, checkpoint_every=2, log_every=2),
    )


def _default() -> Config:
    """The CPU-sized default: `python train.py` on 2 cores (docs/BENCHMARKS.md has the times).

    Reed's GAN-CLS (GAN-INT left out: below) with what measured best in the same budget
    (docs/BENCHMARKS.md, the ablation table): the encoders first learn the joint embedding alone for
    500 steps, with hard negative captions, and stay fixed in the GAN stage (Reed pretrains phi
    too); a BatchNorm on the text encoder's GRU states starts the captions apart, so the warm-up has
    no plateau and the embedding keeps the background (five seeds in docs/BENCHMARKS.md). The text
    embedding is 16 slots that compete for the caption's positions and read their words from the
    first convolution, and from 8x8 on each pixel of G attends over them and takes its own scale and
    shift from what it reads: a colour then stays bound to the part it names, so captions pairing
    colours never paired in training are drawn right far more often (unseen pairs 0.78 and 0.50 on
    seeds 0 and 1 against 0.05 and 0.03; seen pairs 0.91 and 0.86 against 0.75 and 0.73;
    docs/BENCHMARKS.md, session 16). D has a projection term and spectral normalisation in place of
    its BatchNorms, and there is no GAN-INT term: D never sees an interpolated text, so G drew
    noise-like images for half of them, and that noise leaked into some 7% of all samples; without
    GAN-INT they fall to about 1%, the colours hold (unseen pairs 0.82 / 0.43 / 0.79 on seeds 0-2
    against 0.78 / 0.50 for session 16's preset on seeds 0-1; seen 0.94 / 0.83 / 0.93 against 0.91 /
    0.86), interpolations are monotone more often (0.90 / 0.72 / 0.88 against 0.80), and a GAN step
    costs 0.77x the FLOPs (docs/BENCHMARKS.md, sessions 17-18). Half of D's wrong texts are the
    image's own caption with its attribute words swapped. The hard negative term weighs 5 (it is one
    hinge per image against 126 of the matching loss): the embedding then tells a caption from its
    colour swap more often (seen pairs nearest their own pair 0.81-0.87 against 0.75-0.81). The
    encoders learn at 1e-3: at session 11's 5e-4 one seed in four left the unseen captions' colours
    less readable (linear probes 0.86 / 0.82 against 0.95-0.99 at 1e-3, seeds 0-4, with no blow-up
    of the matching loss; session 11's slot-less encoder had one at 1e-3), and that seed's G drew
    unseen pairs right 0.43 of the time against 0.71-0.78 (docs/BENCHMARKS.md, session 19). G and D
    learn from single captions, as G is asked to draw (`train.conditioning_captions=1`; the warm-up
    still matches the mean of four): most captions name no background, so z decides it, as the style
    encoder needs. The style stage also teaches S to redraw real images through the frozen G
    (`train.style_reconstruction_weight`), so that S reads photos, not only G's images. Together
    (seeds 0-3): style transfer keeps the source's background 0.73-0.86 of the time against
    0.36-0.54, the style AUC for the background is 0.81-0.96 against 0.62-0.78, seen pairs
    0.94-0.97 against 0.83-0.94, unseen pairs 0.65-0.83 against 0.43-0.84; but a background the
    caption names is drawn 0.46-0.54 of the time against 0.71-0.88. D and G use the hinge
    loss (DF-GAN). The mode-seeking term keeps G from drawing one image per caption whatever z is;
    without it the style encoder has nothing to recover (at weight 0.25 instead of 1, seen colour
    pairs rose by 0.03 and style transfer fell by 0.05 over five seeds). D trains on the fakes G
    draws for its own step (`train.shared_fakes`: one G forward pass per step instead of Reed's two,
    12% fewer FLOPs per step). G learns at four times D's rate (8e-4 against Reed's 2e-4, which D
    keeps): in this budget G is the one that lags. G upsamples by nearest neighbour and a 3x3
    convolution instead of Reed's transposed convolutions, which draw a 2-pixel speckle, and is two
    thirds as wide (ngf 32, not 48), at 0.55x the FLOPs per step (28.1 against 51.4 GFLOP with
    session 10's affine G). The GAN stage runs 2000 steps, not 800: seen colour pairs and named
    backgrounds are drawn right more often with more steps (seeds 0-3 in bfloat16: colour pairs
    0.51-0.64 at 800 steps, 0.65-0.75 at 2000; backgrounds 0.60-0.76 against 0.84-0.91), and the run
    stayed within the 15- and 20-minute bars on 2 cores (docs/BENCHMARKS.md, session 14; with
    session 16's slots, attention and warm-up and session 18's D without GAN-INT: 9.5 min with
    native bfloat16, about 17 estimated on AVX2 only). docs/BENCHMARKS.md, sessions 9-19, has the
    seeds behind each choice. `train.precision=auto` picks bfloat16 compute where the CPU has native
    bfloat16 (AMX / AVX-512 bf16) and float32 elsewhere.
    """
    return Config(
        name="default",
        data=DataConfig(image_size=32, batch_size=64, caption_length=128,
                        synthetic_images_per_class=40),
        model=ModelConfig(z_dim=64, embedding_dim=128, text_projection_dim=64, ngf=32, ndf=32,
                          char_embedding_dim=32, text_conv_filters=(128, 128), text_rnn_units=128,
                          image_encoder_filters=(32, 64, 128), style_encoder_filters=(32, 64, 128),
                          upsampling="nearest", generator_conditioning="attention",
                          text_tokens=16, text_slots=16, text_slot_values="local",
                          text_slot_softmax="slots", discriminator_conditioning="projection",
                          spectral_norm=True, discriminator_batch_norm=False,
                          text_batch_norm=True),
        train=TrainConfig(steps=2000, style_steps=300, sample_every=200, checkpoint_every=200,
                          learning_rate=8e-4, d_learning_rate=2e-4, lr_decay_every_epochs=0,
                          gan_loss="hinge", mode_seeking_weight=1.0, eval_every=400,
                          best_metric="attribute_accuracy", encoder_warmup_steps=500,
                          encoder_learning_rate=1e-3, freeze_encoders=True,
                          hard_negative_weight=5.0, hard_negative_wrong_fraction=0.5,
                          shared_fakes=True, interp_weight=0.0, conditioning_captions=1,
                          style_reconstruction_weight=1000.0),
    )


def _paper(name: str, data_format: str) -> Config:
    """Reed et al.'s 64x64 GAN-INT-CLS settings (paper section 5; icml2016 launch scripts).

    Reed pretrains the char-CNN-RNN text encoder and keeps it fixed while the GAN trains: here
    a warm-up stage of 10,000 encoder steps (some 70-100 epochs of the CUB or Oxford-102
    training classes at batch 64) learns the joint embedding, and the encoders stay frozen in
    the GAN stage, whose steps then do no encoder work (every caption is embedded once).
    """
    return Config(
        name=name,
        data=DataConfig(format=data_format, image_size=64, batch_size=64),
        model=ModelConfig(),
        train=TrainConfig(epochs=600, lr_decay_every_epochs=100, style_steps=20000,
                          sample_every=1000, checkpoint_every=1000, log_every=100,
                          encoder_warmup_steps=10000, freeze_encoders=True),
    )


# What the `default` preset adds to Reed's design and `_plus` carries to 64 px (issue 10).
_PLUS_MODEL_FIELDS = ("upsampling", "generator_conditioning", "text_tokens", "text_slots",
                      "text_slot_values", "text_slot_softmax", "discriminator_conditioning",
                      "spectral_norm", "discriminator_batch_norm", "text_batch_norm")
_PLUS_TRAIN_FIELDS = ("gan_loss", "mode_seeking_weight", "hard_negative_weight",
                      "hard_negative_wrong_fraction", "shared_fakes", "interp_weight",
                      "conditioning_captions", "style_reconstruction_weight")


def _plus(name: str, data_format: str) -> Config:
    """Reed's 64x64 run (`_paper`) with the quality options of the `default` preset.

    The options that measured best on the built-in dataset (docs/BENCHMARKS.md, the ablation):
    a text embedding of 16 competing slots that read words, per-pixel attention over them in G,
    a projection term and spectral normalisation instead of BatchNorm in D, no GAN-INT term,
    nearest-neighbour upsampling, a BatchNorm on the text encoder's GRU states, hard negative
    captions in the warm-up (weight 5) and as half of D's wrong texts, the hinge loss, the
    mode-seeking term, shared fakes, single captions for G and D, and a style stage that also
    redraws real images.
    Reed's widths, data, schedule and learning rates stay: `default`'s narrower G (ngf 32), G's
    four-times rate and its encoder rate of 1e-3 were choices for a 2,000-step CPU budget at
    32 px.
    Not measured at 64 px, nor on Oxford-102 or CUB: no such data on the machines that built it.
    """
    paper, default = _paper(name, data_format), _default()
    model = dataclasses.replace(paper.model, **{
        field: getattr(default.model, field) for field in _PLUS_MODEL_FIELDS})
    train = dataclasses.replace(paper.train, **{
        field: getattr(default.train, field) for field in _PLUS_TRAIN_FIELDS})
    return dataclasses.replace(paper, model=model, train=train)


PRESETS = {
    "tiny": _tiny,
    "default": _default,
    "flowers64": lambda: _paper("flowers64", "reed"),
    "cub64": lambda: _paper("cub64", "reed"),
    "flowers64-plus": lambda: _plus("flowers64-plus", "reed"),
    "cub64-plus": lambda: _plus("cub64-plus", "reed"),
}


def get_preset(name: str) -> Config:
    """Returns the named preset; raises ValueError naming the known presets."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}.")
    return PRESETS[name]()


def _parse_value(text: str, current: Any, key: str) -> Any:
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"--set {key}={text}: expected true or false.")
    try:
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, tuple):
            return tuple(int(v) for v in text.split(",") if v)
    except ValueError:
        raise ValueError(f"--set {key}={text}: expected a value like {current!r}.") from None
    if text.lower() in ("none", "null") and current is None:
        return None
    return text


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Applies `section.field=value` strings, e.g. `train.learning_rate=1e-4`.

    Tuples take comma-separated integers (`model.text_conv_filters=64,64`).
    """
    for override in overrides:
        key, sep, text = override.partition("=")
        section_name, dot, field_name = key.strip().partition(".")
        if not sep or not dot or section_name not in ("data", "model", "train"):
            raise ValueError(
                f"--set {override!r}: write section.field=value with section data, model or train.")
        section = getattr(config, section_name)
        names = {f.name for f in dataclasses.fields(section)}
        if field_name not in names:
            raise ValueError(
                f"--set {override!r}: {section_name} has no field '{field_name}' "
                f"(fields: {', '.join(sorted(names))}).")
        value = _parse_value(text.strip(), getattr(section, field_name), key)
        config = dataclasses.replace(
            config, **{section_name: dataclasses.replace(section, **{field_name: value})})
    return config
