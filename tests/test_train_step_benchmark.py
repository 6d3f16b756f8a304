"""benchmarks/train_step.py's configuration: what it times, without timing it."""
from benchmarks.train_step import benchmark_config, build_parser


def _config(*argv):
    return benchmark_config(build_parser().parse_args(list(argv)))


def test_a_paper_preset_is_timed_on_the_built_in_dataset_without_a_data_folder():
    config = _config("--preset", "flowers64", "--batch-size", "64", "--precision", "float32")
    assert (config.data.format, config.data.path) == ("synthetic", None)
    assert (config.data.batch_size, config.data.image_size) == (64, 64)
    assert (config.model.ngf, config.model.ndf, config.model.upsampling) == (128, 64, "transpose")
    assert config.train.precision == "float32"


def test_overrides_and_the_preset_batch_size_carry_over():
    config = _config("--preset", "default", "--set", "train.mode_seeking_weight=0.5")
    assert config.train.mode_seeking_weight == 0.5
    assert config.data.batch_size == 64
    assert config.train.precision == "auto"
