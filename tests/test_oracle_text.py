"""OracleText reads the roles of every synthetic caption; benchmarks/oracle_text.py end to end."""
import json

import numpy as np
import pytest

from tf_t2i.data.synthetic import load_synthetic
from tf_t2i.errors import UserInputError
from tf_t2i.evaluation.oracle_text import CODE_DIM, UNNAMED, OracleText


def test_every_caption_of_the_dataset_is_read_with_its_roles():
    dataset = load_synthetic(image_size=8, images_per_class=2, seed=3)
    oracle = OracleText(32)
    unnamed = np.zeros(4, np.int64)
    for part in (dataset.train, dataset.test):
        for captions, truth in zip(part.captions, part.attributes):
            for caption in captions:
                read = oracle.attributes(caption)
                for column, value in enumerate(read):
                    if value == UNNAMED:
                        unnamed[column] += 1
                    else:
                        assert value == truth[column], (caption, read, truth)
    assert unnamed[0] == 0  # every template names the petal colour
    assert 0 < unnamed[1] < unnamed[2] < unnamed[3]  # one template omits the centre, a few the
    # count, about half of the captions the background


def test_the_roles_decide_the_code_not_the_words():
    oracle = OracleText(CODE_DIM + 4)
    red_petals, blue_petals = oracle.codes(["a flower with three red petals and a blue centre",
                                            "a flower with three blue petals and a red centre"])
    assert not np.allclose(red_petals, blue_petals)
    assert oracle.attributes("A flower with three red petals and a blue centre .") \
        == (0, 3, 0, UNNAMED)
    assert oracle.attributes("the centre of this flower is blue and its 5 petals are red") \
        == (0, 3, 2, UNNAMED)
    assert oracle.attributes("three red petals around a blue centre on a sky blue background") \
        == (0, 3, 0, 3)
    named, no_count = oracle.codes(["a flower with three red petals and a blue centre",
                                    "this flower has red petals and a blue centre"])
    np.testing.assert_allclose(np.linalg.norm(named), np.sqrt(3 / 4 * (CODE_DIM + 4)), rtol=1e-6)
    assert np.count_nonzero(named) == 3 and np.count_nonzero(no_count) == 2
    quarter = (CODE_DIM + 4) // 4
    np.testing.assert_array_equal(named[:2 * quarter], no_count[:2 * quarter])
    assert list(np.flatnonzero(named)) == [0, quarter + 3, 2 * quarter]


def test_a_foreign_caption_or_a_narrow_embedding_is_one_clear_error():
    with pytest.raises(UserInputError, match="no template wrote 'a bird with a red crown'"):
        OracleText(32).attributes("a bird with a red crown")
    with pytest.raises(UserInputError, match="model.embedding_dim >= 28"):
        OracleText(27)


def test_the_benchmark_trains_on_the_code_and_scores_both_splits(tmp_path, capsys):
    from benchmarks.oracle_text import main

    main(["--out", str(tmp_path / "run"), "--preset", "tiny", "--steps", "4", "--captions", "16",
          "--images-per-caption", "1", "--set", "train.hard_negative_wrong_fraction=0.5"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 4 and result["preset"] == "tiny"
    for split in ("seen", "unseen"):
        for name in ("petal_colour", "centre_colour", "petal_count", "colour_pair"):
            assert 0.0 <= result[f"{split}_{name}"] <= 1.0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["freeze_encoders"] and config["train"]["encoder_warmup_steps"] == 1
    assert config["train"]["style_steps"] == 0
    assert (config["train"]["hard_negative_weight"],
            config["train"]["hard_negative_wrong_fraction"]) == (0.0, 0.0)
