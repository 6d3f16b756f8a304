"""The PyTorch reference step of benchmarks/reference_pytorch_step.py, at tiny widths.

Torch is not a dependency of tf_t2i: the tests that need it are skipped where it is missing.
"""
import sys

import numpy as np
import pytest

from benchmarks import reference_pytorch_step
from tf_t2i.models.discriminator import Discriminator as KerasDiscriminator
from tf_t2i.models.generator import Generator as KerasGenerator

BATCH = 2
WIDTHS = dict(z_dim=8, embedding_dim=32, text_projection_dim=16, ngf=16, ndf=8)


@pytest.fixture
def torch():
    """torch, with one thread: on a loaded 2-core machine two threads wait on each other for
    seconds per tiny step."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield torch
    torch.set_num_threads(threads)


def _networks():
    from benchmarks.torch_reference.discriminator import Discriminator
    from benchmarks.torch_reference.generator import Generator

    generator = Generator(WIDTHS["z_dim"], WIDTHS["embedding_dim"],
                          WIDTHS["text_projection_dim"], WIDTHS["ngf"])
    discriminator = Discriminator(WIDTHS["embedding_dim"], WIDTHS["text_projection_dim"],
                                  WIDTHS["ndf"])
    return generator, discriminator


def _step_inputs(torch):
    embeddings = torch.randn(BATCH, WIDTHS["embedding_dim"])
    return torch.rand(BATCH, 3, 64, 64) * 2 - 1, embeddings, embeddings.roll(1, dims=0)


def _copies(module):
    return [parameter.detach().clone() for parameter in module.parameters()]


def _changed(module, before):
    return [not bool((parameter == old).all())
            for parameter, old in zip(module.parameters(), before)]


def test_shapes_and_parameters_mirror_the_keras_models(torch):
    generator, discriminator = _networks()
    z = torch.randn(BATCH, WIDTHS["z_dim"])
    embeddings = torch.randn(BATCH, WIDTHS["embedding_dim"])
    with torch.no_grad():
        images = generator(z, embeddings)
        logits = discriminator(images, embeddings)
    assert images.shape == (BATCH, 3, 64, 64)
    assert float(images.abs().max()) <= 1.0
    assert logits.shape == (BATCH,)

    keras_generator = KerasGenerator(64, WIDTHS["z_dim"], WIDTHS["embedding_dim"],
                                     WIDTHS["text_projection_dim"], ngf=WIDTHS["ngf"])
    keras_discriminator = KerasDiscriminator(64, WIDTHS["embedding_dim"],
                                             WIDTHS["text_projection_dim"], ndf=WIDTHS["ndf"])
    keras_images = keras_generator((z.numpy(), embeddings.numpy()))
    keras_discriminator((keras_images, embeddings.numpy()))
    # Same trained weights layer by layer means the same layers, widths, kernels, biases and
    # BatchNorms (moving statistics are buffers in torch, non-trainable in Keras).
    for torch_model, keras_model in ((generator, keras_generator),
                                     (discriminator, keras_discriminator)):
        torch_shapes = sorted(tuple(p.shape) for p in torch_model.parameters())
        keras_shapes = sorted(_torch_layout(v.shape) for v in keras_model.trainable_weights)
        assert torch_shapes == keras_shapes


def _torch_layout(shape):
    """A Keras weight shape in torch's layout: conv kernels [kh, kw, in, out] -> [out, in, kh,
    kw] (transposed convs' [kh, kw, out, in] -> [in, out, kh, kw]), dense [in, out] -> [out, in]."""
    shape = tuple(shape)
    if len(shape) == 4:
        return shape[3], shape[2], shape[0], shape[1]
    return shape[::-1]


def test_one_step_trains_d_and_g_and_the_g_step_leaves_d_alone(torch):
    from benchmarks.torch_reference.gan_int_cls_step import GanIntClsStep

    generator, discriminator = _networks()
    step = GanIntClsStep(generator, discriminator, WIDTHS["z_dim"])
    images, right, wrong = _step_inputs(torch)
    g_before, d_before = _copies(generator), _copies(discriminator)
    d_loss, g_loss = step(images, right, wrong)
    assert np.isfinite([d_loss, g_loss]).all()
    assert all(_changed(discriminator, d_before))
    assert all(_changed(generator, g_before))

    # D's weights are frozen in G's backward: they keep their values and the D step's gradients.
    g_before, d_before = _copies(generator), _copies(discriminator)
    d_gradients = [p.grad.clone() for p in discriminator.parameters()]
    step._generator_step(right)
    assert all(_changed(generator, g_before))
    assert not any(_changed(discriminator, d_before))
    assert all(bool((p.grad == old).all())
               for p, old in zip(discriminator.parameters(), d_gradients))
    assert all(p.requires_grad for p in discriminator.parameters())


def test_without_torch_one_sentence_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(SystemExit) as exited:
        reference_pytorch_step.main(["--steps", "1"])
    assert str(exited.value) == f"error: {reference_pytorch_step.NO_TORCH}"
    assert "pip install torch" in str(exited.value)


def test_an_odd_batch_size_is_refused(capsys):
    with pytest.raises(SystemExit):
        reference_pytorch_step.main(["--batch-size", "3"])
    assert "--batch-size must be even and >= 2, got 3." in capsys.readouterr().err
