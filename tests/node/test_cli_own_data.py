"""A new chain from an operator's own data and task, from the command line: shapes come from the
files; every bad task, parameter or file is a one-line error, a non-zero exit, and nothing
written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from learnchain.node.cli import main
from learnchain.node.localnet.cluster import run_learnchain


def write_csv(path: Path, features: int, labels: list[int]) -> Path:
    header = ",".join(f"f{j}" for j in range(features)) + ",label\n"
    rows = "".join(
        ",".join(str(i + j) for j in range(features)) + f",{y}\n" for i, y in enumerate(labels)
    )
    path.write_text(header + rows)
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(done: Result, *fragments: str) -> None:
    assert done.exit_code != 0
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error"), done.output
    assert len([line for line in lines if line.startswith("Error")]) == 1, done.output
    for fragment in fragments:
        assert fragment in done.output, done.output


def test_init_on_a_new_chain_takes_the_shape_from_the_data_file(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "mine.csv", 5, [0, 1, 2, 1, 0, 2])
    done = run("init", "--home", str(tmp_path / "h"), "--moniker", "m", "--data-file", str(data))
    assert done.exit_code == 0, done.output
    task = json.loads((tmp_path / "h" / "genesis.json").read_text())["task"]
    assert (task["name"], task["features"], task["classes"]) == ("tabular-mlp", 5, 3)
    assert len(task["feature_mean"]) == 5


def test_testnet_takes_one_file_per_validator_and_their_shape(tmp_path: Path) -> None:
    files = [write_csv(tmp_path / f"p{i}.csv", 7, [0, 1, 4, i]) for i in range(2)]
    done = run(
        "testnet",
        *("--validators", "2", "--output-dir", str(tmp_path / "net")),
        *("--data-files", ",".join(map(str, files)), "--task-param", "hidden=16"),
    )
    assert done.exit_code == 0, done.output
    task = json.loads((tmp_path / "net" / "node1" / "genesis.json").read_text())["task"]
    assert (task["features"], task["classes"], task["hidden"]) == (7, 5, 16)
    assert str(files[1].resolve()) in (tmp_path / "net" / "node1" / "config.toml").read_text()


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--task", "no-such-task"], ["unknown task 'no-such-task'"]),
        (["--task", "no_such_module:Task"], ["cannot import no_such_module"]),
        (["--task", "json:loads"], ["not a subclass of learnchain.ml.tasks.Task"]),
        (["--task-param", "hidden"], ["KEY=VALUE"]),
        (["--task-param", "hidden=-1"], ["task.hidden must be positive"]),
        (["--task-param", "metric=auc"], ["task.metric must be one of"]),
        (["--task", "digits-cnn"], ["digits-cnn takes 8x8 images"]),
    ],
)
def test_a_bad_task_or_parameter_is_a_one_line_error_and_writes_nothing(
    tmp_path: Path, extra: list[str], fragments: list[str]
) -> None:
    data = write_csv(tmp_path / "mine.csv", 5, [0, 1, 2])
    home = tmp_path / "h"
    done = run("init", "--home", str(home), "--moniker", "m", "--data-file", str(data), *extra)
    assert_one_line_error(done, *fragments)
    assert not home.exists()


def test_files_that_disagree_on_their_shape_are_named_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    files = [write_csv(tmp_path / "a.csv", 4, [0, 1]), write_csv(tmp_path / "b.csv", 3, [0, 1])]
    done = run(
        "testnet",
        *("--validators", "2", "--output-dir", str(tmp_path / "net")),
        "--data-files",
        ",".join(map(str, files)),
    )
    assert_one_line_error(done, "b.csv: 3 features per sample", "a.csv has 4")
    assert not (tmp_path / "net").exists()


def test_a_file_count_that_is_not_one_per_validator_is_refused(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "a.csv", 4, [0, 1])
    done = run(
        "testnet",
        "--validators",
        "2",
        "--output-dir",
        str(tmp_path / "net"),
        "--data-files",
        str(data),
    )
    assert_one_line_error(done, "1 files for 2 validators")
    assert not (tmp_path / "net").exists()


def test_a_data_file_of_another_shape_at_start_is_a_one_line_error(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "mine.csv", 5, [0, 1, 2, 1])
    home = tmp_path / "h"
    assert (
        run("init", "--home", str(home), "--moniker", "m", "--data-file", str(data)).exit_code == 0
    )
    write_csv(data, 30, [0, 1, 2, 1])  # the operator swapped the file
    done = run("start", "--home", str(home))
    assert_one_line_error(done, "mine.csv: 30 features per sample, the chain's task expects 5")


def test_testnet_from_folders_of_images_names_the_classes_of_all_of_them(tmp_path: Path) -> None:
    from tests.ml.test_data import write_images

    first = write_images(tmp_path / "org0", {"ant": 2, "bee": 2})
    second = write_images(tmp_path / "org1", {"bee": 2, "cat": 2})
    done = run(
        "testnet",
        *("--validators", "2", "--output-dir", str(tmp_path / "net")),
        *("--data-files", f"{first},{second}"),
    )
    assert done.exit_code == 0, done.output
    task = json.loads((tmp_path / "net" / "node0" / "genesis.json").read_text())["task"]
    assert (task["features"], task["classes"]) == (12, 3)
    assert task["params"]["class_names"] == ["ant", "bee", "cat"]
    assert task["params"]["image_shape"] == [1, 3, 4]  # grayscale, 3 rows of 4 pixels


def test_a_node_whose_task_builds_another_initial_model_refuses_to_start(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "mine.csv", 5, [0, 1, 2, 1])
    home = tmp_path / "h"
    assert (
        run("init", "--home", str(home), "--moniker", "m", "--data-file", str(data)).exit_code == 0
    )
    genesis_file = home / "genesis.json"
    genesis = json.loads(genesis_file.read_text())
    genesis["task"]["hidden"] = 7  # another model than the one whose hash the genesis holds
    genesis_file.write_text(json.dumps(genesis))
    done = run("start", "--home", str(home))
    assert_one_line_error(done, "does not match")


def test_a_regression_chain_takes_its_targets_statistics_from_the_files(tmp_path: Path) -> None:
    rows = "".join(f"{i},{2 * i},{10.5 * i}\n" for i in range(8))
    data = tmp_path / "values.csv"
    data.write_text("a,b,label\n" + rows)
    done = run(
        "init",
        *("--home", str(tmp_path / "h"), "--moniker", "m", "--data-file", str(data)),
        *("--task", "tabular-regression"),
    )
    assert done.exit_code == 0, done.output
    task = json.loads((tmp_path / "h" / "genesis.json").read_text())["task"]
    assert (task["features"], task["classes"], task["metric"]) == (2, 1, "loss")
    assert task["params"]["target_mean"] == pytest.approx(36.75)


def test_the_genesis_of_a_chain_made_from_files_names_their_feature_columns(
    tmp_path: Path,
) -> None:
    data = write_csv(tmp_path / "mine.csv", 3, [0, 1, 2, 1])
    home = tmp_path / "h"
    assert (
        run("init", "--home", str(home), "--moniker", "m", "--data-file", str(data)).exit_code == 0
    )
    task = json.loads((home / "genesis.json").read_text())["task"]
    assert task["feature_names"] == ["f0", "f1", "f2"]


def test_testnet_files_with_the_same_columns_in_another_order_are_aligned_by_name(
    tmp_path: Path,
) -> None:
    first = tmp_path / "a.csv"
    first.write_text("f0,f1,label\n1,100,0\n3,300,1\n")
    second = tmp_path / "b.csv"
    second.write_text("f1,label,f0\n500,0,5\n700,1,7\n")  # same columns, another order
    done = run(
        "testnet",
        *("--validators", "2", "--output-dir", str(tmp_path / "net")),
        *("--data-files", f"{first},{second}"),
    )
    assert done.exit_code == 0, done.output
    task = json.loads((tmp_path / "net" / "node0" / "genesis.json").read_text())["task"]
    assert task["feature_names"] == ["f0", "f1"]
    # pooled by name: f0 is 1, 3, 5, 7 and f1 is 100..700 in every file
    assert task["feature_mean"] == pytest.approx([4.0, 400.0])


def test_testnet_files_whose_columns_differ_by_name_are_refused(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("age,income,label\n1,2,0\n3,4,1\n")
    second = tmp_path / "b.csv"
    second.write_text("age,salary,label\n1,2,0\n3,4,1\n")
    done = run(
        "testnet",
        *("--validators", "2", "--output-dir", str(tmp_path / "net")),
        *("--data-files", f"{first},{second}"),
    )
    assert_one_line_error(done, "b.csv: feature columns differ", "missing 'income'", "'salary'")
    assert not (tmp_path / "net").exists()


def init_chain_from(tmp_path: Path, header: str) -> tuple[Path, Path]:
    """A one-validator chain made from a file with ``header``; (home, the file)."""
    data = tmp_path / "mine.csv"
    data.write_text(header + "\n" + "".join(f"{i},{10 * i},{i % 2}\n" for i in range(8)))
    home = tmp_path / "h"
    assert (
        run("init", "--home", str(home), "--moniker", "m", "--data-file", str(data)).exit_code == 0
    )
    return home, data


def test_a_data_file_whose_columns_were_renamed_is_refused_at_start(tmp_path: Path) -> None:
    home, data = init_chain_from(tmp_path, "height,weight,label")
    data.write_text(data.read_text().replace("height,weight", "height,mass", 1))
    done = run("start", "--home", str(home))
    assert_one_line_error(done, "mine.csv: feature columns differ", "missing 'weight'", "'mass'")


def test_a_data_file_whose_columns_are_in_another_order_is_reordered_by_name(
    tmp_path: Path,
) -> None:
    from learnchain.ml.tasks import get_task
    from learnchain.node.home.files import read_genesis

    home, data = init_chain_from(tmp_path, "height,weight,label")
    task = get_task(read_genesis(home).task)
    before = task.load_data(data, "label")
    lines = data.read_text().splitlines()
    swapped = [",".join([row.split(",")[1], row.split(",")[0], row.split(",")[2]]) for row in lines]
    data.write_text("\n".join(swapped) + "\n")  # weight,height,label
    after = task.load_data(data, "label")
    assert after.feature_names == ("height", "weight")
    assert after.x.tolist() == before.x.tolist(), "trained on the genesis's column order"


PLUGIN = """
from torch import nn

from learnchain.ml.tasks import Task


class Wide(Task):
    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(self.features, 9), nn.ReLU(), nn.Linear(9, self.classes))
"""


def write_plugin(folder: Path, module: str) -> Path:
    folder.mkdir()
    (folder / f"{module}.py").write_text(PLUGIN)
    return folder


def test_a_plugin_task_outside_the_import_path_is_named_with_the_way_to_find_it(
    tmp_path: Path,
) -> None:
    write_plugin(tmp_path / "plugins", "org_task_hidden")
    done = run(
        "init", "--home", str(tmp_path / "h"), "--moniker", "m", "--task", "org_task_hidden:Wide"
    )
    assert_one_line_error(done, "cannot import org_task_hidden", "--task-path")
    assert not (tmp_path / "h").exists()


def test_task_path_finds_a_plugin_task_and_is_kept_for_start(tmp_path: Path) -> None:
    plugins = write_plugin(tmp_path / "plugins", "org_task_found")
    home = tmp_path / "h"
    done = run(
        "init",
        *("--home", str(home), "--moniker", "m"),
        *("--task", "org_task_found:Wide", "--task-path", str(plugins)),
    )
    assert done.exit_code == 0, done.output
    assert f'task_path = ["{plugins.resolve()}"]' in (home / "config.toml").read_text()


def test_start_names_the_genesis_and_task_path_when_its_plugin_cannot_be_imported(
    tmp_path: Path,
) -> None:
    plugins = write_plugin(tmp_path / "plugins", "org_task_moved")
    home = tmp_path / "h"
    init = run(
        "init",
        *("--home", str(home), "--moniker", "m"),
        *("--task", "org_task_moved:Wide", "--task-path", str(plugins)),
    )
    assert init.exit_code == 0, init.output
    (plugins / "org_task_moved.py").rename(tmp_path / "elsewhere.py")  # the folder moved away
    done = run_learnchain("start", "--home", str(home))  # a process that never imported it
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "genesis.json: task 'org_task_moved:Wide': cannot import org_task_moved" in lines[0]
    assert "task_path" in lines[0]


def test_a_chain_whose_initial_model_exceeds_its_weight_limit_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "h"
    done = run(
        "init", "--home", str(home), "--moniker", "m", "--task-param", "max_weights_bytes=1000"
    )
    assert_one_line_error(done, "initial model is 57928 bytes, more than task.max_weights_bytes")
    assert not home.exists()
