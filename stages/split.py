"""DVC stage ``split``: stratified train/test split (``split`` section of params.yaml)."""

import argparse

from lshgan import workflow
from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input")
    parser.add_argument("train")
    parser.add_argument("test")
    pipeline.add_stage_arguments(parser)
    args = parser.parse_args(argv)
    params = pipeline.load_params("split", path=args.params,
                                  overrides=pipeline.parse_assignments(args.set))
    _, train, test = workflow.split(args.input, args.train, args.test, label_key=args.label_key,
                                    test_size=params.get("test_size", 0.2),
                                    seed=params.get("seed", 0), force=True)
    workflow.say(f"split: {train.n_obs} train / {test.n_obs} test cells")


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
