"""Run records into MLflow (the `runs` extra), whose UI browses and compares them:

    ODQA_MLFLOW_URI=sqlite:///mlflow.db odqa train-reader ...   # needs the full `mlflow` package
    ODQA_MLFLOW_URI=file:///abs/path/mlruns odqa train-reader ...  # the local file store (mlflow-skinny too)
    mlflow ui --backend-store-uri sqlite:///mlflow.db

One MLflow run per odqa run, in the experiment "odqa": the flattened config as params, the numeric
metrics, the command, status, git commit and input fingerprints as tags, the record as an artifact."""

from __future__ import annotations

import json
import os
import sys

from odqa.errors import OdqaError


def log_to_mlflow(record: dict, tracking_uri: str, experiment: str = "odqa") -> str | None:
    """The MLflow run id, or None (with a warning) when MLflow cannot take it; the odqa record is
    already written, so nothing is lost."""
    try:
        import mlflow
    except ImportError:
        raise OdqaError("ODQA_MLFLOW_URI is set but MLflow is not installed: pip install 'odqa[runs]'") from None
    from odqa.runs import flatten, numeric_metrics

    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        # MLflow 3 keeps its local file store but refuses it unless asked for: the user asked by naming it
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        tags = {
            "mlflow.runName": record["id"],
            "odqa.command": record["command"],
            "odqa.status": record.get("status", ""),
            "odqa.git_commit": record.get("git_commit") or "",
        }
        for name, value in flatten(record.get("inputs") or {}).items():
            if name.endswith("sha256"):
                tags[f"odqa.input.{name}"] = str(value)
        run = client.create_run(experiment_id, tags=tags)
        for name, value in flatten(record.get("config") or {}).items():
            client.log_param(run.info.run_id, name[:250], json.dumps(value, ensure_ascii=False)[:500])
        for name, value in numeric_metrics(record).items():
            client.log_metric(run.info.run_id, name[:250], value)
        client.log_dict(run.info.run_id, record, "odqa_run.json")
        client.set_terminated(run.info.run_id, "FINISHED" if record.get("status") == "ok" else "FAILED")
        return run.info.run_id
    except Exception as e:  # a tracking server's trouble must not fail the command that already ran
        print(f"warning: could not log the run to MLflow at {tracking_uri}: {e}", file=sys.stderr)
        return None
