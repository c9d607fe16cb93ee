"""DVC stage ``register``: log the run to MLflow, register ``lshgan-<dataset>``, move ``champion``
if the new version's objective is better (``register`` section of params.yaml).

Tracking goes to ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the project.
"""

import argparse

from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("evaluation", help="evaluation JSON of the evaluate stage (or its metrics JSON)")
    parser.add_argument("output", help="registration record (JSON)")
    parser.add_argument("--dataset", required=True, help="registered model lshgan-<dataset>")
    parser.add_argument("--train", default=None, help="training split (for the dataset hash)")
    parser.add_argument("--plots", default=None, help="folder of PNG pictures to log")
    pipeline.add_stage_arguments(parser, label_key=False)
    args = parser.parse_args(argv)
    params = pipeline.load_params("register", path=args.params,
                                  overrides=pipeline.parse_assignments(args.set))
    pipeline.register(args.model, args.evaluation, dataset=args.dataset, params=params,
                      train_path=args.train, plots=args.plots, output=args.output)


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
