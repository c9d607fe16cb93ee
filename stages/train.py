"""DVC stage ``train``: train LSH-GAN on the training split (``train`` section of params.yaml).

Writes the model folder and, in PLOTS, ``losses.csv`` (a DVC plot) and ``losses.png``.
"""

import argparse

from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("train")
    parser.add_argument("model")
    parser.add_argument("--plots", required=True, help="folder for losses.csv and losses.png")
    pipeline.add_stage_arguments(parser)
    args = parser.parse_args(argv)
    params = pipeline.load_params("train", path=args.params,
                                  overrides=pipeline.parse_assignments(args.set))
    pipeline.train(args.train, args.model, label_key=args.label_key, params=params, plots=args.plots)


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
