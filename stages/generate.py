"""DVC stage ``generate``: cells from the trained model for evaluation (``generate`` section)."""

import argparse

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
    pipeline.generate(args.model, args.test, args.output, label_key=args.label_key, params=params)


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
