"""The SDK builds the same model as YAML, and holds the same rules."""

from __future__ import annotations

import pytest
import yaml

from magnus_jupyter import Catalog, Map, Parallel, Pipeline, Stub, Task, ValidationError, load_yaml, to_yaml
from magnus_jupyter.model import Parallel as ParallelStep

SEED = "notebooks/pipeline.yaml"


def _seed_with_sdk() -> Pipeline:
    features = Task("Get Features", "notebooks/get_features.ipynb", "notebook", returns=["n_rows"])
    prepare = Task("Prepare for XGBoost", "notebooks/prepare_xgboost.ipynb", "notebook")
    train = Task("Train XGBoost", "notebooks/train_xgboost.ipynb", "notebook", returns=["xgb_accuracy"])
    prepare >> train
    rf = Task("Train RF Model", "notebooks/train_rf.ipynb", "notebook", returns=["rf_accuracy"])
    models = Parallel("Train Models", branches={
        "XGBoost": Pipeline(steps=[prepare, train], start_at=prepare),
        "RF model": Pipeline(steps=[rf]),
    })
    ensemble = Task("Ensemble Modelling", "notebooks/ensemble.ipynb", "notebook",
                    returns=["ensemble_accuracy", "best_model"])
    inference = Task("Run Inference", "notebooks/inference.ipynb", "notebook",
                     catalog=Catalog(put=["data/xgb_weights.npy"]))
    features >> models >> ensemble >> inference
    return Pipeline(steps=[features, models, ensemble, inference], start_at=features)


def test_sdk_builds_the_seed_pipeline_as_the_yaml_does() -> None:
    sdk = _seed_with_sdk()
    from_yaml = load_yaml(SEED)
    from_yaml.description = None
    assert sdk.model == from_yaml
    assert load_yaml(sdk.to_yaml()) == sdk.model


def test_rshift_chains_and_returns_the_right_hand_step() -> None:
    a, b, c = Stub("a"), Stub("b"), Stub("c")
    assert (a >> b >> c) is c
    p = Pipeline(steps=[a, b, c])
    assert [p.model.steps[n].next for n in "abc"] == ["b", "c", "success"]
    assert set(p.model.steps) == {"a", "b", "c", "success", "fail"}


def test_lshift_and_depends_on() -> None:
    a, b, c = Stub("a"), Stub("b"), Stub("c", terminate_with_success=True)
    b << a  # a >> b
    c.depends_on(b)
    p = Pipeline(steps=[a, b, c], start_at=a)
    assert p.model.steps["a"].next == "b" and p.model.steps["b"].next == "c"


def test_chaining_twice_is_an_error() -> None:
    a = Stub("a")
    a >> Stub("b")
    with pytest.raises(ValidationError, match="already has next"):
        a >> Stub("c")


def test_map_and_terminations() -> None:
    body = Pipeline(steps=[Task("echo", "echo $MAGNUS_MAP_VARIABLE", "shell")])
    fan = Map("fan", branch=body, iterate_on="chunks", iterate_as="chunk", terminate_with_success=True)
    p = Pipeline(steps=[fan])
    data = yaml.safe_load(p.to_yaml())["dag"]["steps"]["fan"]
    assert data["iterate_on"] == "chunks" and data["branch"]["steps"]["echo"]["next"] == "success"
    with pytest.raises(ValidationError, match="both success and failure"):
        Stub("x", terminate_with_success=True, terminate_with_failure=True)


def test_sdk_pipelines_obey_the_graph_rules() -> None:
    a = Stub("a", next_node="nowhere")
    with pytest.raises(ValidationError, match="'nowhere'"):
        Pipeline(steps=[a])
    with pytest.raises(ValidationError, match=r"may not contain '\.'"):
        Pipeline(steps=[Stub("a.b")])
    with pytest.raises(ValidationError, match="dotted path"):
        Pipeline(steps=[Task("py", "not a function")])


def test_branch_is_an_independent_copy() -> None:
    step = Stub("s")
    branch = Pipeline(steps=[step])
    p = Parallel("par", branches={"one": branch, "two": branch})
    model = p.step
    assert isinstance(model, ParallelStep)
    assert set(model.parallel_branches) == {"one", "two"}
    assert to_yaml(Pipeline(steps=[p]).model).count("type: stub") == 2
