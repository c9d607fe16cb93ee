"""DVC stage ``generate``: cells from the trained model for evaluation (``generate`` section)."""

import argparse

from lshgan import workflow
from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("test", help="test split: its size and cell types when n_cells is 'test'")
    parser.add_argument("output")
    pipeline.add_stage_arguments(parser)
    args = parser.parse_args(argv)
    params = pipeline.load_params("generate", path=args.params,
                                  overrides=pipeline.parse_assignments(args.set))
    cells = workflow.generate(args.model, args.output, n_cells=params.get("n_cells", "test"),
                              test=args.test, label_key=args.label_key,
                              seed=int(params.get("seed", 0)), force=True)
    workflow.say(f"generate: {cells.n_obs} cells -> {args.output}")


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
