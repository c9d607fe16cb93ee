"""DVC stage ``train``: train LSH-GAN on the training split (``train`` section of params.yaml).

Writes the model folder and, in PLOTS, ``losses.csv`` (a DVC plot) and ``losses.png``.
"""

import argparse

from lshgan import workflow
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
    model, _ = workflow.train(args.train, args.model, settings=params, label_key=args.label_key,
                              force=True, plots=args.plots, table=True)
    workflow.say(f"train: {model!r}, {len(model.history.epoch)} epochs in {model.train_seconds:.1f} s "
                 f"-> {args.model}")


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
