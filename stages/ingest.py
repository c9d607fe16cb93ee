"""DVC stage ``ingest``: copy a raw dataset into ``data/raw/``.

SOURCE is ``pbmc68k_reduced`` (embedded in scanpy, nothing to download), a file of
``../shared/data/``, or any path :func:`lshgan.read_dataset` reads.  Reads no params section:
``dvc.yaml`` passes ``dataset.source`` and ``dataset.label_key``; for a genes x cells text or
``.mtx`` file, or cell types in a separate table, add ``--transpose`` / ``--obs FILE`` to its
command there (and FILE to its deps).
"""

import argparse

from lshgan import workflow
from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--label-key", default=None, help="obs column with cell types (checked)")
    parser.add_argument("--transpose", action="store_true",
                        help="the text or .mtx source is genes x cells")
    parser.add_argument("--obs", default=None, metavar="TABLE",
                        help="a .csv/.tsv of cell annotations joined into .obs (first column: cell names)")
    args = parser.parse_args(argv)
    adata = workflow.ingest(args.source, args.output, label_key=args.label_key,
                            transpose=args.transpose, obs=args.obs)
    workflow.say(f"ingest: {args.source} ({adata.n_obs} cells x {adata.n_vars} genes) -> {args.output}")


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
