"""The one config schema: validation errors name the field; overrides go through validation."""

from pathlib import Path

import pytest
import yaml

from drgrader.config import ConfigError, ExperimentConfig, load_config, save_config
from drgrader.config_recipes import shipped_configs


def write(tmp_path, data) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", list(shipped_configs()))
def test_shipped_configs_validate(name):
    cfg = load_config(name)
    assert isinstance(cfg, ExperimentConfig)


def test_unknown_field_is_named(tmp_path):
    path = write(tmp_path, {"train": {"epocs": 3}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "train.epocs: unknown field" in str(err.value)
    assert str(path) in str(err.value)


def test_ill_typed_field_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(write(tmp_path, {"train": {"epochs": "many"}}))


@pytest.mark.parametrize(
    "override, field",
    [("train.epochs=-1", "train.epochs"), ("data.image_size=0", "data.image_size"), ("train.lr=0", "train.lr")],
)
def test_impossible_values_rejected(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


def test_overrides_are_parsed_and_validated():
    cfg = load_config(None, ["train.epochs=3", "train.lr=5e-4", "model.backbone=mobilenetv2_100", "eval.tta=[orig, hflip]"])
    assert cfg.train.epochs == 3 and cfg.train.lr == pytest.approx(5e-4)
    assert cfg.model.backbone == "mobilenetv2_100"
    assert cfg.eval.tta == ["orig", "hflip"]


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="section.field=value"):
        load_config(None, ["train.epochs"])


def test_loss_must_fit_task():
    with pytest.raises(ConfigError, match="does not fit model.task"):
        load_config(None, ["model.task=any_dr", "train.loss=mse"])
    assert load_config(None, ["model.task=any_dr", "train.loss=focal"]).train.loss == "focal"


def test_split_fractions_checked():
    with pytest.raises(ConfigError, match="split"):
        load_config(None, ["data.split.val=0.6", "data.split.test=0.5"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.epochs=7", "data.root=/data/eyepacs"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg


def test_a_relative_root_is_read_from_the_working_folder_and_a_folder_beside_the_config_is_named(tmp_path, monkeypatch,
                                                                                                   caplog):
    """Probe 34 BX8: `data.root: synthB` in cfgdir/ev.yaml read ./synthB while cfgdir/synthB, another
    data set, was not read, without a word."""
    import logging

    (tmp_path / "synthB").mkdir()
    (tmp_path / "cfgdir" / "synthB").mkdir(parents=True)
    config = tmp_path / "cfgdir" / "ev.yaml"
    config.write_text("data:\n  root: synthB\n")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        assert load_config(config).data.root == Path("synthB")
    assert (f"data.root 'synthB' is read from the working folder ({tmp_path / 'synthB'}), as relative paths are; "
            f"{config.parent / 'synthB'} beside the config is not read") in caplog.text
    # Probe 35 BY3: a split file likewise.
    (tmp_path / "split.csv").write_text("image_id,split\n")
    (tmp_path / "cfgdir" / "split.csv").write_text("image_id,split\n")
    config.write_text("data:\n  root: synthB\n  split:\n    file: split.csv\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        load_config(config)
    assert f"data.split.file 'split.csv' is read from the working folder ({tmp_path / 'split.csv'})" in caplog.text
    caplog.clear()
    monkeypatch.chdir(tmp_path / "cfgdir")  # the same folder either way: nothing to say
    with caplog.at_level(logging.WARNING, logger="drgrader"):
        load_config(Path("ev.yaml"))
    assert "beside the config" not in caplog.text
