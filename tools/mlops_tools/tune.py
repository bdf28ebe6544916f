"""Prove the tuning DAGs on a running platform, and measure trials per minute.

What the tuning DAGs must show, through the Airflow REST API and MLflow's (nothing else):

1. **A bad search space** (an unknown key, low > high, a budget of 0) fails the DAG run at its
   first task, ``validate``, with the key in its log; no study run is created in MLflow and no
   model version is registered.
2. **A small study per pipeline** (default: 4 trials of the PyTorch MLP, 4 of LightGBM, small
   epochs/rounds), one after the other: the DAG run succeeds, MLflow holds a parent run with a
   child run per trial, trials ran in parallel (overlapping start/end), and the parent run
   carries the champion decision and its reason.
3. **A killed trial** (``--kill api``: the running trial task is set to failed through the API,
   so Airflow kills it with SIGTERM; ``--kill worker``: ``docker restart -t 0`` of the worker,
   so it dies with SIGKILL and is retried): its run ends KILLED or FAILED in MLflow and the
   study still ends with a decision.

Prints one line per check and the trials per minute of each study; ``--json`` prints it all.
Exit 0 when every check passed, 1 when one failed, 2 when Airflow or MLflow is unreachable.

    PYTHONPATH=tools python -m mlops_tools.tune [--pipelines pytorch_mlp,lightgbm] [--trials 4]
        [--kill api|worker|none] [--no-bad-space] [--timeout-minutes 40] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlops_tools import defaults
from mlops_tools import pipelines as P
from mlops_tools.airflow_api import AirflowApiError, AirflowClient, read_password
from mlops_tools.mlflow_api import (
    MlflowApiError,
    MlflowClient,
    add_login_arguments,
    kv,
    latest_metrics,
    read_login,
)

# Small studies: a few minutes each on 2 cores, every trial well over its gate on full MNIST.
# prune_below under the gate: with 2 epochs the pruner looks after the first, when a sound MLP
# may still be just under 0.95; a trial under 0.90 there is a bad one.
STUDY_CONF: dict[str, dict[str, Any]] = {
    "pytorch_mlp": {"search_space": {"learning_rate": {"low": 0.0005, "high": 0.003, "log": True},
                                     "hidden_units": {"low": 128, "high": 384, "step": 128}, "epochs": 2},
                    "prune_below": 0.9},
    "lightgbm": {"search_space": {"learning_rate": {"low": 0.1, "high": 0.4, "log": True},
                                  "num_leaves": {"choices": [15, 31]}, "num_boost_round": 25},
                 "prune_below": 0.85},
    "tensorflow_mlp": {"search_space": {"learning_rate": {"low": 0.0005, "high": 0.003, "log": True}, "epochs": 2}},
    "xgboost": {"search_space": {"learning_rate": {"low": 0.2, "high": 0.5}, "num_boost_round": 20}},
    "tensorflow_cnn": {"search_space": {"learning_rate": {"low": 0.001, "high": 0.004, "log": True}, "epochs": 1}},
    "pytorch_cnn": {"search_space": {"learning_rate": {"low": 0.002, "high": 0.005, "log": True}, "epochs": 1}},
}
# (conf, text the validate task's log must hold): each names the bad key.
BAD_SPACES: tuple[tuple[dict[str, Any], str], ...] = (
    ({"search_space": {"learning_rat": {"low": 0.001, "high": 0.01}}}, "search_space.learning_rat"),
    ({"search_space": {"learning_rate": {"low": 0.01, "high": 0.001}}}, "search_space.learning_rate: low 0.01 > high 0.001"),
    ({"n_trials": 0}, "n_trials must be in [1, 64], got 0"),
)
TERMINAL = ("success", "failed")


# --------------------------------------------------------------------------- judging (pure)


def check(name: str, passed: bool, evidence: str) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "evidence": evidence}


def judge_bad_space(dag_id: str, expected: str, run_state: str, task_states: Mapping[str, str],
                    validate_log: str, study_runs: int, versions_before: int, versions_after: int) -> dict[str, Any]:
    """A bad space: the run failed, validate failed with the key in its log, nothing else ran,
    no study run, no new model version."""
    problems = []
    if run_state != "failed":
        problems.append(f"run {run_state}")
    if task_states.get("validate") != "failed":
        problems.append(f"validate {task_states.get('validate')}")
    ran = sorted(t for t, s in task_states.items() if t not in ("validate", "select_best") and s in ("success", "running"))
    if ran:
        problems.append(f"tasks ran after it: {ran}")
    if expected not in validate_log:
        problems.append(f"validate's log does not say {expected!r}")
    if study_runs:
        problems.append(f"{study_runs} study run(s) created")
    if versions_after != versions_before:
        problems.append(f"model versions {versions_before} → {versions_after}")
    return check(f"{dag_id}: bad space refused at validate ({expected})", not problems,
                 "; ".join(problems) or f"run failed at validate: {expected}")


def intervals(children: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    return sorted((int(c["start_time"]), int(c["end_time"])) for c in children
                  if c.get("start_time") is not None and c.get("end_time") is not None and c.get("status") == "FINISHED")


def overlaps(spans: Sequence[tuple[int, int]]) -> bool:
    return any(b[0] < a[1] for a, b in itertools.pairwise(spans))


def judge_study(dag_id: str, trials: int, run_state: str, parent: Mapping[str, Any] | None,
                children: Sequence[Mapping[str, Any]], killed: int | None) -> list[dict[str, Any]]:
    """The study's checks: run state, parent and children in MLflow, parallel trials, the
    decision with its reason, and the killed trial's run."""
    out = [check(f"{dag_id}: DAG run succeeded", run_state == "success", f"state {run_state}")]
    if parent is None:
        out.append(check(f"{dag_id}: study parent run in MLflow", False, "no parent run tagged with this DAG run"))
        return out
    numbers = sorted({int(c["trial"]) for c in children if c.get("trial") is not None})
    out.append(check(f"{dag_id}: parent run with a child run per trial",
                     parent["status"] == "FINISHED" and numbers == list(range(trials)),
                     f"parent {parent['status']}, trials {numbers} in {len(children)} child run(s)"))
    spans = intervals(children)
    out.append(check(f"{dag_id}: trials ran in parallel", overlaps(spans),
                     f"{len(spans)} finished trial runs; start/end (s from first): "
                     + ", ".join(f"{(s - spans[0][0]) / 1000:.0f}-{(e - spans[0][0]) / 1000:.0f}" for s, e in spans)
                     if spans else "no finished trial runs"))
    decision, reason = parent.get("decision"), parent.get("reason")
    out.append(check(f"{dag_id}: champion decision logged with its reason",
                     decision in ("promoted", "kept", "rejected") and bool(reason),
                     f"{decision}: {reason}"))
    if killed is not None:
        ended = [c for c in children if c.get("trial") == killed and c["status"] in ("KILLED", "FAILED")]
        out.append(check(f"{dag_id}: killed trial {killed} ended KILLED/FAILED, the study went on",
                         bool(ended) and parent["status"] == "FINISHED",
                         f"trial {killed} runs: {[c['status'] for c in children if c.get('trial') == killed]}"))
    return out


# --------------------------------------------------------------------------- platform


class Platform:
    def __init__(self, airflow: AirflowClient, mlflow: MlflowClient, poll: float = 5.0) -> None:
        self.airflow, self.mlflow, self.poll = airflow, mlflow, poll

    def trigger(self, dag_id: str, conf: Mapping[str, Any]) -> str:
        dag = self.airflow.dag(dag_id)
        if dag is None:
            raise AirflowApiError(f"DAG {dag_id} is not registered (is the tuning release deployed?)")
        if dag.get("is_paused"):
            self.airflow.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self.airflow.post(f"/api/v2/dags/{dag_id}/dagRuns",
                                {"logical_date": None, "conf": dict(conf), "note": "mlops_tools.tune"})
        return run["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.airflow.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def wait(self, dag_id: str, run_id: str, timeout: float,
             while_running: Callable[[], None] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run.get("state") in TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise AirflowApiError(f"{dag_id} {run_id} still {run.get('state')} after {timeout:.0f} s")
            if while_running is not None:
                while_running()
            time.sleep(self.poll)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.airflow.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                                limit=200).get("task_instances", [])

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        body = self.airflow.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                                full_content=True)
        return json.dumps(body.get("content", body))

    def fail_task(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> None:
        self.airflow.patch(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}",
                           {"new_state": "failed"})

    def study(self, pipeline: P.Pipeline, dag_run_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        experiment = self.mlflow.experiment_by_name(pipeline.tuning_experiment)
        if experiment is None:
            return None, []
        exp = [experiment["experiment_id"]]
        parents = self.mlflow.search_runs(exp, f"tags.`{P.TAG_STUDY_ROLE}` = 'study' and "
                                               f"tags.`{P.TAG_DAG_RUN_ID}` = '{dag_run_id}'", max_results=10)
        if not parents:
            return None, []
        info, tags = parents[0]["info"], kv(parents[0]["data"].get("tags"))
        parent = {"run_id": info["run_id"], "status": info["status"], "metrics": latest_metrics(parents[0]),
                  "decision": tags.get(P.TAG_CHAMPION_DECISION), "reason": tags.get(P.TAG_CHAMPION_REASON),
                  "registered_version": tags.get(P.TAG_REGISTERED_VERSION)}
        children = []
        for run in self.mlflow.search_runs(exp, f"tags.`{P.TAG_STUDY}` = '{info['run_id']}'", max_results=1000):
            c_tags = kv(run["data"].get("tags"))
            children.append({"run_id": run["info"]["run_id"], "status": run["info"]["status"],
                             "trial": int(c_tags[P.TAG_TRIAL]) if c_tags.get(P.TAG_TRIAL) else None,
                             "state": c_tags.get(P.TAG_TRIAL_STATE), "start_time": run["info"].get("start_time"),
                             "end_time": run["info"].get("end_time")})
        return parent, children

    def study_runs(self, pipeline: P.Pipeline, dag_run_id: str) -> int:
        return 0 if self.study(pipeline, dag_run_id)[0] is None else 1

    def versions(self, pipeline: P.Pipeline) -> int:
        body = self.mlflow.get("/model-versions/search", filter=f"name = '{pipeline.registered_model}'",
                               max_results=1000)
        return len(body.get("model_versions", []))


# --------------------------------------------------------------------------- steps


def bad_spaces(platform: Platform, pipeline: P.Pipeline, timeout: float) -> list[dict[str, Any]]:
    out = []
    for conf, expected in BAD_SPACES:
        before = platform.versions(pipeline)
        run_id = platform.trigger(pipeline.tuning_dag_id, conf)
        run = platform.wait(pipeline.tuning_dag_id, run_id, timeout)
        states = {t["task_id"]: t["state"] for t in platform.task_instances(pipeline.tuning_dag_id, run_id)}
        out.append(judge_bad_space(pipeline.tuning_dag_id, expected, run["state"], states,
                                   platform.log(pipeline.tuning_dag_id, run_id, "validate"),
                                   platform.study_runs(pipeline, run_id), before, platform.versions(pipeline)))
    return out


def one_study(platform: Platform, pipeline: P.Pipeline, trials: int, kill: str, project: str,
              timeout: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    conf = {**STUDY_CONF[pipeline.key], "n_trials": trials}
    run_id = platform.trigger(pipeline.tuning_dag_id, conf)
    killed: list[int] = []

    def kill_one() -> None:
        if kill == "none" or killed:
            return
        running = [t for t in platform.task_instances(pipeline.tuning_dag_id, run_id)
                   if t["task_id"] == "trial" and t["state"] == "running"]
        if not running:
            return
        victim = max(running, key=lambda t: t["map_index"])
        time.sleep(3)  # in its run by now (params are logged first), far from its end
        still = [t for t in platform.task_instances(pipeline.tuning_dag_id, run_id)
                 if t["task_id"] == "trial" and t["map_index"] == victim["map_index"]]
        if not still or still[0]["state"] != "running":
            return  # it ended meanwhile: try the next running one
        if kill == "api":
            platform.fail_task(pipeline.tuning_dag_id, run_id, "trial", victim["map_index"])
        else:  # SIGKILL to every task on the worker: a lost worker, then Airflow's retry
            subprocess.run(["docker", "restart", "-t", "0", f"{project}-airflow-worker-1"], check=True,
                           capture_output=True)
        killed.append(int(victim["map_index"]))

    started = time.monotonic()
    run = platform.wait(pipeline.tuning_dag_id, run_id, timeout, kill_one)
    parent, children = platform.study(pipeline, run_id)
    checks = judge_study(pipeline.tuning_dag_id, trials, run["state"], parent, children,
                         killed[0] if killed else None)
    summary = {"pipeline": pipeline.key, "dag_run_id": run_id, "state": run["state"],
               "wall_seconds": round(time.monotonic() - started, 1), "killed_trial": killed[0] if killed else None,
               "trials_per_minute": (parent or {}).get("metrics", {}).get(P.METRIC_TRIALS_PER_MINUTE),
               "decision": (parent or {}).get("decision"), "reason": (parent or {}).get("reason"),
               "parent_run_id": (parent or {}).get("run_id"), "child_runs": children}
    return checks, summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlops_tools.tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--airflow-url", default=defaults.AIRFLOW_URL)
    parser.add_argument("--airflow-user", default=defaults.AIRFLOW_USER)
    parser.add_argument("--airflow-password-file", default=defaults.AIRFLOW_PASSWORD_FILE)
    parser.add_argument("--mlflow-url", default=defaults.MLFLOW_URL)
    add_login_arguments(parser)
    parser.add_argument("--project", default=defaults.COMPOSE_PROJECT, help="compose project (for --kill worker)")
    parser.add_argument("--pipelines", default="pytorch_mlp,lightgbm", help="studies to run, one after the other")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--kill", choices=("api", "worker", "none"), default="api",
                        help="kill one running trial of the first study (default %(default)s)")
    parser.add_argument("--no-bad-space", action="store_true", help="skip the bad-search-space runs")
    parser.add_argument("--timeout-minutes", type=float, default=40.0, help="per DAG run")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keys = [k.strip() for k in args.pipelines.split(",") if k.strip()]
    unknown = [k for k in keys if k not in P.BY_KEY]
    if unknown:
        print(f"error: unknown pipeline(s) {unknown}; known: {list(P.BY_KEY)}", file=sys.stderr)
        return 2
    timeout = args.timeout_minutes * 60
    try:
        password = read_password(args.airflow_password_file, args.airflow_user)
        platform = Platform(AirflowClient(args.airflow_url, args.airflow_user, password, timeout=30),
                            MlflowClient(args.mlflow_url, timeout=30,
                                         auth=read_login(args.mlflow_user, args.mlflow_password_file)))
        checks: list[dict[str, Any]] = []
        studies = []
        if not args.no_bad_space:
            checks += bad_spaces(platform, P.BY_KEY[keys[0]], timeout)
        for i, key in enumerate(keys):
            study_checks, summary = one_study(platform, P.BY_KEY[key], args.trials,
                                              args.kill if i == 0 else "none", args.project, timeout)
            checks += study_checks
            studies.append(summary)
    except (AirflowApiError, MlflowApiError, OSError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"passed": all(c["passed"] for c in checks), "checks": checks, "studies": studies}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for c in checks:
            print(f"{'ok  ' if c['passed'] else 'FAIL'} {c['name']}: {c['evidence']}")
        for s in studies:
            rate = s["trials_per_minute"]
            print(f"{s['pipeline']}: {rate:.2f} trials/min" if rate else f"{s['pipeline']}: no trials/min recorded",
                  f"(DAG run {s['wall_seconds']} s, {s['decision']}: {s['reason']})")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
