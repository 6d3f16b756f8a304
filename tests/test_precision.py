"""train.precision: `auto` picks bfloat16 only where the hardware runs it natively; float16 trains."""
import dataclasses

import keras
import numpy as np
import pytest

from tf_t2i import precision
from tf_t2i.config import PRESETS, get_preset
from tf_t2i.data.caption_encoder import CaptionEncoder
from tf_t2i.data.load_dataset import load_dataset
from tf_t2i.data.pipeline import make_train_dataset
from tf_t2i.runs import build_gan, with_resolved_precision

AVX2_ONLY = {"fpu", "sse4_2", "avx", "avx2", "fma", "f16c"}
SAPPHIRE_RAPIDS = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


@pytest.mark.parametrize("flags, expected", [
    (AVX2_ONLY, "float32"),
    (AVX2_ONLY | {"avx512f", "avx512_vnni"}, "float32"),  # AVX-512 without its bf16 extension
    (AVX2_ONLY | {"avx512_bf16"}, "mixed_bfloat16"),
    (AVX2_ONLY | {"amx_bf16"}, "mixed_bfloat16"),
    (SAPPHIRE_RAPIDS, "mixed_bfloat16"),
    (set(), "float32"),  # /proc/cpuinfo unreadable (another OS): the safe choice
])
def test_auto_on_cpus(flags, expected, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    choice = precision.resolve_precision("auto", flags=flags, gpus=[])
    assert choice.policy == expected
    assert choice.reason


@pytest.mark.parametrize("gpus, expected", [
    ([(8, 0)], "mixed_bfloat16"), ([(9, 0), (8, 6)], "mixed_bfloat16"),
    ([(7, 5)], "float32"), ([(8, 0), (7, 0)], "float32"),
])
def test_auto_on_gpus_ignores_the_cpu(gpus, expected):
    assert precision.resolve_precision("auto", flags=AVX2_ONLY, gpus=gpus).policy == expected
    assert precision.resolve_precision("auto", flags=SAPPHIRE_RAPIDS,
                                       gpus=gpus).policy == expected


@pytest.mark.parametrize("explicit", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_an_explicit_value_wins(explicit):
    for flags in (AVX2_ONLY, SAPPHIRE_RAPIDS):
        assert precision.resolve_precision(explicit, flags=flags, gpus=[]).policy == explicit


@pytest.mark.parametrize("cap, expected", [("AVX2", "float32"), ("avx512_core", "float32"),
                                            ("AVX512_CORE_BF16", "mixed_bfloat16"),
                                            ("AVX512_CORE_AMX", "mixed_bfloat16"),
                                            ("ALL", "mixed_bfloat16")])
def test_a_onednn_isa_cap_below_bfloat16_counts_as_no_native_bfloat16(cap, expected, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert precision.resolve_precision("auto", flags=SAPPHIRE_RAPIDS, gpus=[]).policy == expected


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n"
                       "flags\t\t: fpu avx2 amx_bf16 avx512_bf16\n\nprocessor\t: 1\n"
                       "flags\t\t: fpu\n")
    assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "amx_bf16", "avx512_bf16"}
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


def test_every_preset_resolves_its_precision_at_start_up():
    assert {name: get_preset(name).train.precision for name in PRESETS} == {
        name: "auto" for name in PRESETS}


@pytest.mark.parametrize("flags, expected", [(AVX2_ONLY, "float32"),
                                             (SAPPHIRE_RAPIDS, "mixed_bfloat16")])
def test_a_run_records_and_announces_the_resolved_value(flags, expected, monkeypatch, capsys):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    monkeypatch.setattr(precision, "gpu_capabilities", lambda: [])
    config = with_resolved_precision(get_preset("tiny"), announce=True)
    assert config.train.precision == expected
    assert capsys.readouterr().out.startswith(f"precision: {expected} (auto: the CPU has")


@pytest.mark.parametrize("options", [
    {},
    # Hinge, MA-GP (a gradient inside the D step's tape), translation and the EMA generator.
    {"gan_loss": "hinge", "gradient_penalty_weight": 2.0, "diff_augment": "translation",
     "ema_decay": 0.999}])
def test_one_mixed_float16_step_has_finite_losses_and_gradients_for_every_model(options):
    """Loss scaling happens inside the tape, so no trained variable gets a None gradient."""
    tiny = get_preset("tiny")
    config = dataclasses.replace(
        tiny, data=dataclasses.replace(tiny.data, synthetic_images_per_class=1),
        train=dataclasses.replace(tiny.train, precision="mixed_float16", **options))
    encoder = CaptionEncoder(config.data.alphabet, config.data.caption_length)
    batch = next(iter(make_train_dataset(load_dataset(config.data).train, config.data, encoder)))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        gan = build_gan(config, encoder.vocabulary_size, steps_per_epoch=10)
        gradients = {}
        for name in ("encoder_optimizer", "d_optimizer", "g_optimizer"):
            optimizer = getattr(gan, name)
            assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            optimizer.apply_gradients = _recording(optimizer.apply_gradients,
                                                   gradients.setdefault(name, []))
        logs = gan.train_step(batch)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(np.isfinite(float(value)) for value in logs.values()), logs
    expected = {"encoder_optimizer": len(gan._encoder_variables()),
                "d_optimizer": len(gan.discriminator.trainable_variables),
                "g_optimizer": len(gan.generator.trainable_variables)}
    assert {name: len(pairs) for name, pairs in gradients.items()} == expected
    for name, pairs in gradients.items():
        assert all(gradient is not None for gradient, _ in pairs), name


def _recording(apply_gradients, into):
    def record(grads_and_vars):
        grads_and_vars = list(grads_and_vars)
        into.extend(grads_and_vars)
        return apply_gradients(grads_and_vars)
    return record
