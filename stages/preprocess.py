"""DVC stage ``preprocess``: filter, normalise, log2(1+x) (``preprocess`` section of params.yaml)."""

import argparse

from lshgan import config, workflow
from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input")
    parser.add_argument("output")
    pipeline.add_stage_arguments(parser)
    args = parser.parse_args(argv)
    params = pipeline.load_params("preprocess", path=args.params,
                                  overrides=pipeline.parse_assignments(args.set))
    raw, out = workflow.preprocess(args.input, args.output, config=config.preprocess_config(params),
                                   label_key=args.label_key, force=True)
    workflow.say(f"preprocess: {raw.n_obs} x {raw.n_vars} -> {out.n_obs} cells x {out.n_vars} genes")


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
