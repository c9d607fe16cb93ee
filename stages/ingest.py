"""DVC stage ``ingest``: copy a raw dataset into ``data/raw/``.

SOURCE is ``pbmc68k_reduced`` (embedded in scanpy, nothing to download), a file of
``../shared/data/``, or any path :func:`lshgan.read_dataset` reads.  Reads no params section:
``dvc.yaml`` passes ``dataset.source`` and ``dataset.label_key``.
"""

import argparse

from lshgan import workflow
from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--label-key", default=None, help="obs column with cell types (checked)")
    args = parser.parse_args(argv)
    adata = workflow.ingest(args.source, args.output, label_key=args.label_key)
    workflow.say(f"ingest: {args.source} ({adata.n_obs} cells x {adata.n_vars} genes) -> {args.output}")


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
