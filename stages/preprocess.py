"""DVC stage ``preprocess``: filter, normalise, log2(1+x) (``preprocess`` section of params.yaml)."""

import argparse

from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input")
    parser.add_argument("output")
    pipeline.add_stage_arguments(parser)
    args = parser.parse_args(argv)
    params = pipeline.load_params("preprocess", path=args.params,
                                  overrides=pipeline.parse_assignments(args.set))
    pipeline.preprocess(args.input, args.output, label_key=args.label_key, params=params)


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
