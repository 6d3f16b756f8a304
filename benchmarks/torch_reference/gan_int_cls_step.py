"""One GAN-INT-CLS training step in PyTorch on precomputed text embeddings.

Reference: Reed et al. 2016, Algorithm 1 (GAN-CLS) and section 4.3 (GAN-INT).
"""
import torch
import torch.nn.functional as F


class GanIntClsStep:
    """Adam optimizers of G and D and the step `tf_t2i.gan.TextToImageGAN` runs after its encoder
    step: a D step, then a G step with GAN-INT.

    D step: fakes G(z, right) drawn without gradient (G in training mode, so its BatchNorm
    statistics move, as in ours); D's loss BCE(D(real, right), 1) + cls_weight BCE(D(real, wrong),
    0) + (1 - cls_weight) BCE(D(fake, right), 0), the real images' features computed once for the
    right and the wrong text. G step: G draws the batch's texts and half a batch of interpolated
    texts (e_2i + e_2i+1) / 2 with fresh noise; D (training mode, weights frozen: no gradient of
    its weights is computed) scores them; G's loss BCE(batch, 1) + interp_weight BCE(interp, 1).

    Args:
        generator: `Generator`.
        discriminator: `Discriminator`.
        z_dim: noise size.
        learning_rate, beta_1: Adam's (Reed: 2e-4, 0.5; beta_2 0.999 and eps 1e-7, Keras').
        cls_weight: weight of {real image, wrong text} in D's loss (Reed: 0.5).
        interp_weight: weight of the GAN-INT term in G's loss (Reed: 1).

    Call args:
        images: [batch, 3, 64, 64] real images in [-1, 1].
        right_embeddings: [batch, E] their texts' embeddings.
        wrong_embeddings: [batch, E] other examples' texts' embeddings.

    Returns: (d_loss, g_loss) as floats.
    """

    def __init__(self, generator, discriminator, z_dim, learning_rate=2e-4, beta_1=0.5,
                 cls_weight=0.5, interp_weight=1.0):
        self.generator = generator.train()
        self.discriminator = discriminator.train()
        self.z_dim = z_dim
        self.cls_weight = cls_weight
        self.interp_weight = interp_weight
        adam = dict(lr=learning_rate, betas=(beta_1, 0.999), eps=1e-7)
        self.g_optimizer = torch.optim.Adam(generator.parameters(), **adam)
        self.d_optimizer = torch.optim.Adam(discriminator.parameters(), **adam)

    def __call__(self, images, right_embeddings, wrong_embeddings):
        d_loss = self._discriminator_step(images, right_embeddings, wrong_embeddings)
        g_loss = self._generator_step(right_embeddings)
        return d_loss, g_loss

    def _noise(self, rows):
        return torch.randn(rows, self.z_dim)

    def _discriminator_step(self, images, right_embeddings, wrong_embeddings):
        with torch.no_grad():
            fake_images = self.generator(self._noise(len(images)), right_embeddings)
        features = self.discriminator.features(images)
        real_logits = self.discriminator.score(features, right_embeddings)
        wrong_logits = self.discriminator.score(features, wrong_embeddings)
        fake_logits = self.discriminator(fake_images, right_embeddings)
        loss = (_bce(real_logits, 1.0) + self.cls_weight * _bce(wrong_logits, 0.0)
                + (1.0 - self.cls_weight) * _bce(fake_logits, 0.0))
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        return loss.item()

    def _generator_step(self, embeddings):
        batch_size = len(embeddings)
        interpolated = 0.5 * (embeddings[0::2] + embeddings[1::2])
        conditioning = torch.cat([embeddings, interpolated])
        fake_images = self.generator(self._noise(len(conditioning)), conditioning)
        self.discriminator.requires_grad_(False)
        logits = self.discriminator(fake_images, conditioning)
        loss = (_bce(logits[:batch_size], 1.0)
                + self.interp_weight * _bce(logits[batch_size:], 1.0))
        self.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.discriminator.requires_grad_(True)
        self.g_optimizer.step()
        return loss.item()


def _bce(logits, label):
    """Mean BCE of sigmoid(logits) against a constant label."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))
