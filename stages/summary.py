"""DVC stage ``summary`` (all-datasets/dvc.yaml): one metrics table over every dataset."""

import argparse

from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", help="folder holding <dataset>/metrics.json")
    parser.add_argument("output", help="summary metrics JSON")
    parser.add_argument("--table", default=None, help="also write a Markdown table here")
    args = parser.parse_args(argv)
    pipeline.summarise(args.folder, args.output, table=args.table)


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
