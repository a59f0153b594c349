"""A genesis ceremony: organisations sign gentx files on their own machines, anyone collects
them into genesis.json, and each validates its own entry. No key and no row of data leaves an
organisation; a tampered, foreign or duplicate gentx is refused with one line naming the file,
and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from learnchain.node.cli import main
from learnchain.node.home.files import read_config, read_genesis, read_key
from learnchain.node.home.genesis_ceremony import CeremonyError, read_gentx


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(done: Result, *fragments: str) -> None:
    assert done.exit_code != 0, done.output
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    errors = [line for line in done.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, done.output
    for fragment in fragments:
        assert fragment in errors[0], done.output


def write_party_csv(path: Path, seed: int, reversed_columns: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    names = ["age", "dose", "weight"]
    x = rng.normal([50, 2, 70], [10, 1, 15], (30, 3))
    y = rng.integers(0, 3, 30)
    order = [2, 1, 0] if reversed_columns else [0, 1, 2]
    lines = [",".join([names[j] for j in order] + ["label"])]
    lines += [
        ",".join(f"{row[j]:.5f}" for j in order) + f",{label}"
        for row, label in zip(x, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def sign(root: Path, i: int, *extra: str, chain_id: str = "consortium-1") -> Path:
    data = write_party_csv(root / f"org{i}.csv", i, reversed_columns=i == 1)
    return sign_data(root, i, data, *extra, chain_id=chain_id)


def sign_data(root: Path, i: int, data: Path, *extra: str, chain_id: str = "consortium-1") -> Path:
    """Organisation ``i``'s gentx for its ``data`` (a file or a folder of images)."""
    gentx_file = root / "public" / f"gentx-org{i}.json"
    done = run(
        "genesis",
        "gentx",
        *("--home", str(root / f"org{i}"), "--chain-id", chain_id, "--moniker", f"org{i}"),
        *("--endpoint", f"10.0.0.{i + 1}:26656", "--data-file", str(data), "-o", str(gentx_file)),
        *extra,
    )
    assert done.exit_code == 0, done.output
    return gentx_file


def collect(root: Path, *files: Path, chain_id: str = "consortium-1") -> Result:
    out = root / "public" / "genesis.json"
    return run(
        "genesis",
        "collect",
        *map(str, files),
        *("--chain-id", chain_id, "-o", str(out), "--genesis-time", "2026-12-07T00:00:00Z"),
    )


def validate(root: Path, i: int) -> Result:
    genesis_file = root / "public" / "genesis.json"
    return run("genesis", "validate", str(genesis_file), "--home", str(root / f"org{i}"))


@pytest.fixture
def ceremony(tmp_path: Path) -> tuple[Path, list[Path]]:
    return tmp_path, [sign(tmp_path, i) for i in range(3)]


def test_a_gentx_holds_the_summary_of_the_data_and_no_row_and_no_secret(
    ceremony: tuple[Path, list[Path]],
) -> None:
    root, files = ceremony
    text = files[0].read_text()
    raw = json.loads(text)
    key = read_key(root / "org0")
    assert raw["public_key"] == key.public_key.hex()
    assert key.seed_bytes().hex() not in text
    assert raw["data"]["count"] == 30 and len(raw["data"]["sums"]) == 3
    first_row = (root / "org0.csv").read_text().splitlines()[1].split(",")[0]
    assert first_row not in text, "a value of the data file is in the gentx"
    config = read_config(root / "org0")
    assert (config.external_address, config.listen) == ("10.0.0.1:26656", "0.0.0.0:26656")


def test_collect_pools_the_summaries_as_testnet_pools_the_files(
    ceremony: tuple[Path, list[Path]],
) -> None:
    root, files = ceremony
    done = collect(root, *files)
    assert done.exit_code == 0, done.output
    made = read_genesis(root / "public")
    local = run(
        "testnet",
        *("--validators", "3", "--output-dir", str(root / "local")),
        *("--data-files", ",".join(str(root / f"org{i}.csv") for i in range(3))),
    )
    assert local.exit_code == 0, local.output
    pooled = read_genesis(root / "local" / "node0").task
    assert made.task.feature_names == ["age", "dose", "weight"] == pooled.feature_names
    assert (made.task.features, made.task.classes) == (pooled.features, pooled.classes)
    np.testing.assert_allclose(made.task.feature_mean, pooled.feature_mean, rtol=1e-12)
    np.testing.assert_allclose(made.task.feature_scale, pooled.feature_scale, rtol=1e-12)
    assert [v.moniker for v in made.genesis.validators] == ["org0", "org1", "org2"]
    assert {a for a, _ in made.genesis.accounts} == {
        read_key(root / f"org{i}").address for i in range(3)
    }


def sign_images(root: Path, i: int, classes: dict[str, int]) -> Path:
    from tests.ml.test_data import write_images

    return sign_data(root, i, write_images(root / f"images{i}", classes))


def test_founders_with_folders_of_images_make_the_genesis_testnet_makes_from_them(
    tmp_path: Path,
) -> None:
    files = [
        sign_images(tmp_path, 0, {"ant": 2, "bee": 2}),
        sign_images(tmp_path, 1, {"bee": 2, "cat": 3}),
    ]
    raw = json.loads(files[1].read_text())["data"]
    assert raw["class_names"] == ["bee", "cat"] and raw["image_shape"] == [1, 3, 4]
    assert collect(tmp_path, *files).exit_code == 0
    made = read_genesis(tmp_path / "public").task
    local = run(
        "testnet",
        *("--validators", "2", "--output-dir", str(tmp_path / "local")),
        *("--data-files", f"{tmp_path / 'images0'},{tmp_path / 'images1'}"),
    )
    assert local.exit_code == 0, local.output
    pooled = read_genesis(tmp_path / "local" / "node0").task
    assert made.params["class_names"] == ["ant", "bee", "cat"] == pooled.params["class_names"]
    assert made.params["image_shape"] == [1, 3, 4] == pooled.params["image_shape"]
    assert (made.features, made.classes) == (pooled.features, pooled.classes) == (12, 3)
    np.testing.assert_allclose(made.feature_mean, pooled.feature_mean, rtol=1e-12)
    np.testing.assert_allclose(made.feature_scale, pooled.feature_scale, rtol=1e-12)
    done = validate(tmp_path, 1)  # its folder, labelled by the chain's class names, fits
    assert done.exit_code == 0, done.output


def test_a_data_file_among_folders_of_images_is_refused_naming_it(tmp_path: Path) -> None:
    images = sign_images(tmp_path, 0, {"ant": 2, "bee": 2})
    table = sign(tmp_path, 1)
    assert_one_line_error(collect(tmp_path, images, table), f"{table}: a data file, while {images}")


def test_a_summary_naming_a_class_outside_its_folder_is_refused_at_reading(
    tmp_path: Path,
) -> None:
    from learnchain.node.home.genesis_ceremony import compute_signing_bytes

    path = sign_images(tmp_path, 0, {"ant": 2, "bee": 2})
    raw = json.loads(path.read_text())
    raw["data"]["class_names"] = ["../ant", "bee"]
    key = read_key(tmp_path / "org0")
    body = {k: v for k, v in raw.items() if k != "signature"}
    raw["signature"] = key.sign(compute_signing_bytes(body)).hex()
    path.write_text(json.dumps(raw))
    with pytest.raises(CeremonyError, match=r"gentx-org0\.json: data\.class_names"):
        read_gentx(path)


def test_each_founder_validates_its_entry_and_gets_the_others_as_peers(
    ceremony: tuple[Path, list[Path]],
) -> None:
    root, files = ceremony
    assert collect(root, *files).exit_code == 0
    hashes = set()
    for i in range(3):
        done = validate(root, i)
        assert done.exit_code == 0, done.output
        assert f"org{i} is in it unchanged" in done.output
        hashes.add(next(line for line in done.output.splitlines() if "sha256" in line).split()[1])
        peers = read_config(root / f"org{i}").persistent_peers
        assert sorted(peers) == sorted(f"10.0.0.{j + 1}:26656" for j in range(3) if j != i)
        assert (root / f"org{i}" / "genesis.json").exists()
    assert len(hashes) == 1


def test_a_founder_refuses_a_genesis_that_changed_its_entry(
    ceremony: tuple[Path, list[Path]],
) -> None:
    root, files = ceremony
    assert collect(root, *files).exit_code == 0
    genesis_file = root / "public" / "genesis.json"
    raw = json.loads(genesis_file.read_text())
    raw["validators"][0]["stake"] = 1
    genesis_file.write_text(json.dumps(raw))
    done = validate(root, 0)
    assert_one_line_error(done, "its stake is 1, the gentx signed 1000")
    assert not (root / "org0" / "genesis.json").exists(), "nothing is installed"


def test_a_tampered_gentx_is_refused_naming_the_file(ceremony: tuple[Path, list[Path]]) -> None:
    root, files = ceremony
    raw = json.loads(files[1].read_text())
    raw["stake"] = 1_000_000
    files[1].write_text(json.dumps(raw))
    done = collect(root, *files)
    assert_one_line_error(done, f"{files[1]}: bad signature")
    assert not (root / "public" / "genesis.json").exists()


def test_a_gentx_for_another_chain_is_refused_naming_the_file(tmp_path: Path) -> None:
    files = [sign(tmp_path, 0), sign(tmp_path, 1, chain_id="elsewhere-7")]
    assert_one_line_error(collect(tmp_path, *files), f"{files[1]}: for chain 'elsewhere-7'")


def test_a_duplicate_key_or_endpoint_is_refused_naming_both_files(tmp_path: Path) -> None:
    first = sign(tmp_path, 0)
    again = tmp_path / "again.json"
    again.write_bytes(first.read_bytes())
    assert_one_line_error(collect(tmp_path, first, again), f"{again}: the same key as {first}")
    other = sign(tmp_path, 1)
    same_endpoint = run(
        "genesis",
        "gentx",
        *("--home", str(tmp_path / "org9"), "--chain-id", "consortium-1", "--moniker", "org9"),
        *("--endpoint", "10.0.0.2:26656", "-o", str(tmp_path / "org9.json")),
        *("--data-file", str(tmp_path / "org0.csv")),
    )
    assert same_endpoint.exit_code == 0, same_endpoint.output
    assert_one_line_error(
        collect(tmp_path, first, other, tmp_path / "org9.json"),
        f"{tmp_path / 'org9.json'}: the same endpoint as {other}",
    )


def test_data_statistics_of_the_wrong_shape_are_refused_naming_the_file(tmp_path: Path) -> None:
    first = sign(tmp_path, 0)
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("age,dose,label\n1,2,0\n3,4,1\n")
    done = run(
        "genesis",
        "gentx",
        *("--home", str(tmp_path / "orgN"), "--chain-id", "consortium-1", "--moniker", "orgN"),
        *("--endpoint", "10.0.0.9:26656", "--data-file", str(narrow)),
        *("-o", str(tmp_path / "narrow.json")),
    )
    assert done.exit_code == 0, done.output
    refused = collect(tmp_path, first, tmp_path / "narrow.json")
    assert_one_line_error(refused, f"{tmp_path / 'narrow.json'}: 2 features per sample")


def test_a_signed_summary_whose_lists_disagree_is_refused_at_reading(tmp_path: Path) -> None:
    from learnchain.node.home.genesis_ceremony import compute_signing_bytes

    path = sign(tmp_path, 0)
    raw = json.loads(path.read_text())
    raw["data"]["squared_deviations"] = [1.0]
    key = read_key(tmp_path / "org0")
    body = {k: v for k, v in raw.items() if k != "signature"}
    raw["signature"] = key.sign(compute_signing_bytes(body)).hex()
    path.write_text(json.dumps(raw))
    with pytest.raises(
        CeremonyError, match=r"gentx-org0\.json: data\.squared_deviations: 1 values"
    ):
        read_gentx(path)  # signed by its key: the shape, not the signature, is what fails


@pytest.mark.parametrize(
    ("key", "bad", "problem"),
    [
        ("public_key", "zz", "not valid hex"),
        ("public_key", "ab" * 31, "expected 32 bytes, got 31"),
        ("signature", 7, "expected a hex string"),
    ],
)
def test_a_key_or_signature_that_is_not_its_length_of_hex_is_refused_naming_the_field(
    tmp_path: Path, key: str, bad: object, problem: str
) -> None:
    path = sign(tmp_path, 0)
    raw = json.loads(path.read_text())
    raw[key] = bad
    path.write_text(json.dumps(raw))
    with pytest.raises(CeremonyError, match=rf"gentx-org0\.json: {key}: {problem}"):
        read_gentx(path)


def test_a_file_that_is_not_a_gentx_is_refused_naming_it(tmp_path: Path) -> None:
    stray = tmp_path / "genesis.json"
    stray.write_text('{"chain_id": "x"}')
    assert_one_line_error(collect(tmp_path, stray), f"{stray}: not a gentx")
    huge = tmp_path / "huge.json"
    with huge.open("wb") as handle:
        handle.truncate((16 << 20) + 10)
    assert_one_line_error(collect(tmp_path, huge), f"{huge}: larger than")


def test_with_tls_each_organisation_keeps_its_authority_and_the_genesis_trusts_them_all(
    tmp_path: Path,
) -> None:
    files = [sign(tmp_path, i, "--tls") for i in range(2)]
    assert collect(tmp_path, *files).exit_code == 0
    made = read_genesis(tmp_path / "public")
    assert len(made.tls_roots) == 2
    for i in range(2):
        assert "PRIVATE KEY" not in files[i].read_text()
        done = validate(tmp_path, i)
        assert done.exit_code == 0, done.output
        bundle = (tmp_path / f"org{i}" / "tls" / "ca.pem").read_text()
        assert bundle == "".join(made.tls_roots)
        assert read_config(tmp_path / f"org{i}").tls


def test_data_summarised_by_another_task_is_refused(tmp_path: Path) -> None:
    files = [sign(tmp_path, 0), sign(tmp_path, 1)]
    done = run(
        "genesis",
        "collect",
        *map(str, files),
        *("--chain-id", "consortium-1", "-o", str(tmp_path / "g.json"), "--task", "digits-mlp"),
    )
    assert_one_line_error(done, "summarised by task 'tabular-mlp', the chain's is 'digits-mlp'")
