"""Settings: defaults, overrides from settings.json, and one negative test per rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlops_training import registry, settings
from mlops_training.settings import (
    SettingsError,
    get_settings,
    load_settings,
    parse_settings,
)


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(document))
    return path


def test_defaults_cover_six_pipelines_with_plan_floor_gates() -> None:
    all_settings = parse_settings({})
    assert list(all_settings) == [
        "xgboost", "lightgbm", "tensorflow_mlp", "tensorflow_cnn", "pytorch_mlp", "pytorch_cnn",
    ]
    for key, cfg in all_settings.items():
        assert cfg.gate == cfg.plan_floor == registry.BY_KEY[key].plan_gate
        assert cfg.retries >= 1
        assert cfg.execution_timeout_minutes > 0
        assert cfg.hyperparameters == {k: hp.default for k, hp in settings.HYPERPARAMETERS[key].items()}
    assert {c.dag_id for c in all_settings.values()} == {
        "xgboost_pipeline", "lightgbm_pipeline", "tensorflow_mnist_mlp", "tensorflow_mnist_cnn",
        "pytorch_mnist_mlp", "pytorch_mnist_cnn",
    }
    # The verify playbook finds each pipeline's runs in the experiment named like its DAG.
    assert all(c.experiment_name == c.dag_id for c in all_settings.values())


def test_file_overrides_merge_over_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, {
        "seed": 7,
        "num_threads": 2,
        "pipelines": {"xgboost": {
            "gate": 0.9, "retries": 3, "retry_delay_seconds": 5, "execution_timeout_minutes": 12.5,
            "hyperparameters": {"num_boost_round": 80, "learning_rate": 0.2},
        }},
    })
    cfg = load_settings(path)["xgboost"]
    assert (cfg.gate, cfg.retries, cfg.retry_delay_seconds, cfg.execution_timeout_minutes) == (0.9, 3, 5, 12.5)
    assert (cfg.seed, cfg.num_threads) == (7, 2)
    assert cfg.hyperparameters["num_boost_round"] == 80
    assert cfg.hyperparameters["learning_rate"] == 0.2
    assert cfg.hyperparameters["max_depth"] == settings.HYPERPARAMETERS["xgboost"]["max_depth"].default
    # Untouched pipelines keep their defaults.
    assert load_settings(path)["lightgbm"].gate == 0.87


def test_environment_variable_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.SETTINGS_FILE_ENV, str(_write(tmp_path, {"pipelines": {"pytorch_cnn": {"retries": 4}}})))
    assert get_settings("pytorch_cnn").retries == 4


def test_missing_default_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.SETTINGS_FILE_ENV)
    monkeypatch.setattr(settings, "DEFAULT_SETTINGS_FILE", tmp_path / "absent.json")
    assert get_settings("lightgbm").gate == 0.87


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="absent.json does not exist"):
        load_settings(tmp_path / "absent.json")


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    with pytest.raises(SettingsError, match=r"settings\.json is not valid JSON"):
        load_settings(path)


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"settings\.json: pipelines\.xgboost\.gate 0\.5 is below"):
        load_settings(_write(tmp_path, {"pipelines": {"xgboost": {"gate": 0.5}}}))


@pytest.mark.parametrize(("document", "message"), [
    # gates: only raised, never lowered, and reachable
    ({"pipelines": {"xgboost": {"gate": 0.84}}}, r"gate 0\.84 is below the plan's floor 0\.85"),
    ({"pipelines": {"pytorch_cnn": {"gate": 0.97}}}, r"below the plan's floor 0\.98"),
    ({"pipelines": {"lightgbm": {"gate": 1.0}}}, r"gate must be < 1\.0"),
    ({"pipelines": {"lightgbm": {"gate": "0.9"}}}, r"gate must be a number"),
    ({"pipelines": {"lightgbm": {"gate": True}}}, r"gate must be a number"),
    # execution timeout
    ({"pipelines": {"tensorflow_cnn": {"execution_timeout_minutes": 0}}}, r"execution_timeout_minutes must be a number > 0"),
    ({"pipelines": {"tensorflow_cnn": {"execution_timeout_minutes": -5}}}, r"must be a number > 0"),
    ({"pipelines": {"tensorflow_cnn": {"execution_timeout_minutes": "20"}}}, r"must be a number > 0"),
    # retries
    ({"pipelines": {"pytorch_mlp": {"retries": -1}}}, r"retries must be in \[0, 20\]"),
    ({"pipelines": {"pytorch_mlp": {"retries": 1.5}}}, r"retries must be an integer"),
    ({"pipelines": {"pytorch_mlp": {"retries": True}}}, r"retries must be an integer"),
    ({"pipelines": {"pytorch_mlp": {"retry_delay_seconds": -1}}}, r"retry_delay_seconds must be in"),
    # Celery queue: one name of the characters a worker's --queues accepts
    ({"pipelines": {"pytorch_cnn": {"queue": ""}}}, r"pipelines\.pytorch_cnn\.queue must be a Celery queue name"),
    ({"pipelines": {"pytorch_cnn": {"queue": "heavy,gpu"}}}, r"queue must be a Celery queue name .* got 'heavy,gpu'"),
    ({"pipelines": {"pytorch_cnn": {"queue": "heavy queue"}}}, r"queue must be a Celery queue name"),
    ({"pipelines": {"pytorch_cnn": {"queue": "heavy\n"}}}, r"queue must be a Celery queue name"),
    ({"pipelines": {"pytorch_cnn": {"queue": ["heavy"]}}}, r"queue must be a Celery queue name"),
    # unknown keys at every level
    ({"pipelines": {"catboost": {}}}, r"unknown model key\(s\) \['catboost'\]"),
    ({"pipelines": {"xgboost": {"gates": 0.9}}}, r"pipelines\.xgboost: unknown field\(s\) \['gates'\]"),
    ({"pipeline": {}}, r"unknown top-level field\(s\) \['pipeline'\]"),
    ({"pipelines": {"xgboost": {"hyperparameters": {"n_estimators": 10}}}},
     r"hyperparameters: unknown key\(s\) \['n_estimators'\]"),
    # hyper-parameter types and ranges
    ({"pipelines": {"pytorch_cnn": {"hyperparameters": {"epochs": 2.5}}}}, r"epochs must be an integer"),
    ({"pipelines": {"pytorch_cnn": {"hyperparameters": {"epochs": 0}}}}, r"epochs must be in \[1, 500\]"),
    ({"pipelines": {"tensorflow_mlp": {"hyperparameters": {"dropout": 0.95}}}}, r"dropout must be in \[0\.0, 0\.9\]"),
    ({"pipelines": {"tensorflow_mlp": {"hyperparameters": {"learning_rate": "fast"}}}}, r"learning_rate must be a number"),
    ({"pipelines": {"xgboost": {"hyperparameters": []}}}, r"hyperparameters must be an object"),
    # shapes
    ({"pipelines": []}, r"pipelines must be an object"),
    ({"pipelines": {"xgboost": 0.9}}, r"pipelines\.xgboost must be an object"),
    ({"seed": -1}, r"seed must be in"),
    ({"num_threads": "2"}, r"num_threads must be an integer"),
])
def test_bad_values_are_rejected_with_a_clear_message(document: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_settings(document)


def test_a_queue_is_per_pipeline_and_absent_by_default(tmp_path: Path) -> None:
    path = _write(tmp_path, {"pipelines": {"tensorflow_cnn": {"queue": "heavy"}, "pytorch_cnn": {"queue": "gpu-a.1"}}})
    loaded = load_settings(path)
    assert (loaded["tensorflow_cnn"].queue, loaded["pytorch_cnn"].queue) == ("heavy", "gpu-a.1")
    assert {key: cfg.queue for key, cfg in loaded.items() if key not in {"tensorflow_cnn", "pytorch_cnn"}} == {
        "xgboost": None, "lightgbm": None, "tensorflow_mlp": None, "pytorch_mlp": None}
    assert all(cfg.queue is None for cfg in parse_settings({}).values())


def test_document_must_be_an_object() -> None:
    with pytest.raises(SettingsError, match="must be a JSON object"):
        parse_settings([])


def test_unknown_pipeline_lookup_is_rejected() -> None:
    with pytest.raises(SettingsError, match="unknown pipeline 'sklearn'"):
        get_settings("sklearn")


def test_gate_at_its_floor_is_accepted() -> None:
    assert parse_settings({"pipelines": {"xgboost": {"gate": 0.85}}})["xgboost"].gate == 0.85


def test_settings_are_read_only() -> None:
    cfg = get_settings("xgboost")
    with pytest.raises(TypeError):
        cfg.hyperparameters["max_depth"] = 100  # type: ignore[index]


def test_settings_module_imports_nothing_heavy() -> None:
    # DAG files import it at parse time in the dag-processor, which has no numpy/ML libraries.
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import mlops_training.settings, mlops_training.gates; "
        "heavy = [m for m in ('numpy', 'pandas', 'mlflow', 'tensorflow', 'torch', 'xgboost', 'lightgbm') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    dags_dir = str(Path(settings.__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, "-c", code, dags_dir], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
