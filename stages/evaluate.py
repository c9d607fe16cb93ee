"""DVC stage ``evaluate``: metrics JSON and pictures against the test split (``evaluate`` section)."""

import argparse
from pathlib import Path

from lshgan import workflow
from lshgan.mlops import pipeline


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("generated")
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("metrics", help="output: metrics JSON for DVC (objective, main metrics)")
    parser.add_argument("--evaluation", default=None,
                        help="output: the full evaluation JSON, every metric and the references "
                             "(default: evaluation.json next to METRICS)")
    parser.add_argument("--plots", required=True, help="folder for umap.png and gene_statistics.png")
    pipeline.add_stage_arguments(parser)
    args = parser.parse_args(argv)
    params = pipeline.load_params("evaluate", path=args.params,
                                  overrides=pipeline.parse_assignments(args.set))
    result, _ = workflow.evaluate(args.generated, args.train, args.test,
                                  args.evaluation or Path(args.metrics).with_name("evaluation.json"),
                                  label_key=args.label_key, seed=int(params.get("seed", 0)),
                                  references=bool(params.get("references", True)),
                                  plots=args.plots, summary=args.metrics, force=True)
    m = result["lshgan"]
    workflow.say(f"evaluate: rf_auc {m['rf_auc']:.3f}, dcr {m['dcr']:.3f}, objective "
                 f"{result['objective']:.3f} -> {args.metrics}")


if __name__ == "__main__":
    raise SystemExit(pipeline.run_stage(main))
