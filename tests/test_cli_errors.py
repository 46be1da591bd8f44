"""Every user-fixable error is one short line and exit 2, whatever layer raised it."""

import pytest

from drgrader.cli import main


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  root: {tmp_path}\n")
    return path


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_ill_formed_set_value(config, capsys):
    assert main(["data", "summary", str(config), "--set", "train.epochs=[1, 2"]) == 2
    assert "override 'train.epochs=[1, 2'" in one_line(capsys)


def test_config_not_in_utf8(tmp_path, capsys):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["data", "summary", str(path)]) == 2
    assert "is not UTF-8 text" in one_line(capsys)


def test_a_megabyte_of_input_is_not_echoed(config, capsys):
    assert main(["data", "summary", str(config), "--set", "train.epochs=" + "9" * 1_000_000 + "x"]) == 2
    assert len(capsys.readouterr().err) < 2000


@pytest.mark.parametrize("spec", ["3/x", "5/3", "3", "1/0"])
def test_bad_shard_spec(config, capsys, spec):
    assert main(["preprocess", str(config), "--shard", spec]) == 2
    assert "--shard" in one_line(capsys)


def test_port_out_of_range(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(tmp_path), "--port", "70000"])
    assert exit_info.value.code == 2
    assert "is not a port" in capsys.readouterr().err


def test_models_given_a_folder_that_is_no_grader(tmp_path, capsys):
    # Before: "error: [Errno 2] No such file or directory: '.../MODEL_CARD.md'"; "" listed the graders.
    assert main(["models", str(tmp_path)]) == 2
    assert f"{tmp_path}: not a bundle folder, and not a built-in grader" in one_line(capsys)
    assert main(["models", ""]) == 2
    assert "an empty grader name" in one_line(capsys)


@pytest.mark.parametrize(("command", "said"), [
    (["export", "b"], "interrupted; nothing half-written is left (rerun the command to start again)"),
    (["train", "c.yaml"], "interrupted; finished epochs are kept (drgrader train --resume RUN continues)"),
    (["predict", "x.jpeg"], "interrupted; finished work is kept (rerun the same command to continue)"),
])
def test_ctrl_c_says_what_the_command_keeps(monkeypatch, capsys, command, said):
    # Before (probe 27): every command said "finished work is kept (rerun or --resume to continue)",
    # export too, which has no --resume and keeps nothing.
    import drgrader.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, f"cmd_{command[0]}", interrupted)
    assert main(command) == 130
    assert capsys.readouterr().err.strip() == said
