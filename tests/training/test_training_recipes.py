"""Each recipe learns real digits from a small slice of MNIST (2,000 training digits).

Chance is 10 %; every recipe must be far above it on 1,000 unseen test digits,
with a falling training loss and one history point per epoch/round. A recipe
whose library is not installed is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from mlops_training import data, pipeline, recipes, settings

# Small but honest settings: enough to learn, small enough to run in seconds.
SMALL: dict[str, dict[str, Any]] = {
    "xgboost": {"num_boost_round": 15, "max_bin": 16, "max_depth": 4},
    "lightgbm": {"num_boost_round": 15, "max_bin": 15, "num_leaves": 15, "min_data_in_leaf": 5},
    "tensorflow_mlp": {"epochs": 4, "batch_size": 64},
    "tensorflow_cnn": {"epochs": 3, "batch_size": 64},
    "pytorch_mlp": {"epochs": 4, "batch_size": 64},
    "pytorch_cnn": {"epochs": 3, "batch_size": 64},
}
# Well above chance (0.10) on 1,000 test digits after training on 2,000.
MIN_ACCURACY = {"xgboost": 0.8, "lightgbm": 0.8}
DEFAULT_MIN_ACCURACY = 0.8


def _require(key: str) -> None:
    module = recipes.LIBRARY_MODULES[key]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{key}: {module} is not installed in this environment")


@pytest.fixture(scope="module")
def small(mnist):
    sliced = data.Mnist(mnist.x_train[:2500], mnist.y_train[:2500], mnist.x_test[:1000], mnist.y_test[:1000])
    return pipeline.mnist_splits(sliced, validation_size=500, seed=42)


def _hp(key: str) -> dict[str, Any]:
    return dict(settings.parse_settings({"pipelines": {key: {"hyperparameters": SMALL[key]}}})[key].hyperparameters)


@pytest.fixture(scope="module")
def trained(small):
    """Train each recipe once per module (lazily), shared by the assertions below."""
    cache: dict[str, recipes.TrainResult] = {}

    def get(key: str) -> recipes.TrainResult:
        _require(key)
        if key not in cache:
            train_data, _, _ = small
            cache[key] = recipes.get_recipe(key).train(train_data, _hp(key), 42, 2)
        return cache[key]

    return get


@pytest.mark.parametrize("key", settings.PIPELINES)
def test_recipe_learns_digits(key: str, trained, small) -> None:
    result = trained(key)
    _, x_test, y_test = small
    acc = recipes.accuracy(key, result.model, x_test, y_test)
    assert acc > MIN_ACCURACY.get(key, DEFAULT_MIN_ACCURACY), f"{key} reached only {acc:.3f}"
    predictions = recipes.get_recipe(key).predict(result.model, x_test[:7])
    assert predictions.shape == (7,) and set(predictions.tolist()) <= set(range(10))


@pytest.mark.parametrize("key", settings.PIPELINES)
def test_recipe_reports_learning_curves_and_time(key: str, trained) -> None:
    result = trained(key)
    steps = SMALL[key].get("epochs", SMALL[key].get("num_boost_round"))
    assert set(result.history) == set(recipes.HISTORY_KEYS)
    assert all(len(values) == steps for values in result.history.values()), result.history
    losses = result.history["train_loss"]
    assert losses[-1] < losses[0], f"{key} training loss did not fall: {losses}"
    assert result.history["val_accuracy"][-1] > 0.5
    assert all(0.0 <= a <= 1.0 for a in result.history["train_accuracy"] + result.history["val_accuracy"])
    assert result.train_seconds > 0
    assert result.library_version and result.flavor in {"xgboost", "lightgbm", "tensorflow", "pytorch"}


@pytest.mark.parametrize("key", ["xgboost", "lightgbm", "pytorch_mlp"])
def test_recipe_is_deterministic_for_a_seed(key: str, trained, small) -> None:
    first = trained(key)
    train_data, _, _ = small
    again = recipes.get_recipe(key).train(train_data, _hp(key), 42, 2)
    assert again.history["val_loss"] == pytest.approx(first.history["val_loss"], rel=1e-6)


def test_thread_budget_is_explicit(trained) -> None:
    result = trained("xgboost")
    assert result.params["nthread"] == 2
    assert recipes.resolve_threads(3) == 3
    assert 1 <= recipes.resolve_threads(0) == recipes.available_cpus() <= (np.__dict__.get("x") or 10_000)


def test_gbm_recipes_train_on_a_table(synthetic_mnist) -> None:
    # The tabular DAG path: 2-D features, non-MNIST class count.
    _require("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    train_data, x_test, y_test = pipeline.tabular_splits(x, y, 3, validation_size=50, seed=1)
    result = recipes.train_lightgbm(train_data, _hp("lightgbm") | {"num_boost_round": 40}, 1, 2)
    assert recipes.accuracy("lightgbm", result.model, x_test, y_test) > 0.8


def test_unknown_recipe_is_rejected() -> None:
    with pytest.raises(KeyError, match="unknown recipe 'sklearn'"):
        recipes.get_recipe("sklearn")


@pytest.mark.parametrize("key", settings.PIPELINES)
def test_a_step_hook_sees_each_step_and_can_stop_training(key: str, small) -> None:
    """The tuning trials' pruner: called after every epoch/round with that step's curves; True stops."""
    _require(key)
    train_data, x_test, _ = small
    seen: list[tuple[int, dict[str, float]]] = []

    def hook(step: int, metrics: dict[str, float]) -> bool:
        seen.append((step, dict(metrics)))
        return step == 2

    result = recipes.get_recipe(key).train(train_data, _hp(key), 42, 2, on_step=hook)
    assert [step for step, _ in seen] == [1, 2]  # stopped after the second of 3+ steps
    assert all(sorted(metrics) == sorted(recipes.HISTORY_KEYS) for _, metrics in seen)
    assert all(len(values) == 2 for values in result.history.values()), result.history
    # What the hook saw is what the history holds: the curves logged live match the result.
    assert [metrics["val_accuracy"] for _, metrics in seen] == pytest.approx(result.history["val_accuracy"])
    assert recipes.get_recipe(key).predict(result.model, x_test[:5]).shape == (5,)
