"""Command line: ``python -m serve_app serve|parse|demo|restructure ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _restructure(args) -> int:
    from serve_app.assemble import assemble_document, concatenate_markdown, page_from_pruned
    from serve_app.options import ParseOptions, RestructureOptions

    pages, settings = [], {}
    for n, path in enumerate(args.results):
        try:
            pruned = json.loads(Path(path).read_text())
            pages.append(page_from_pruned(pruned, n))
            settings = settings or pruned.get("model_settings") or {}
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {path} is not a prunedResult JSON file ({exc}); pass the files that "
                  "/layout-parsing returned as result.layoutParsingResults[i].prunedResult", file=sys.stderr)
            return 2
    options = ParseOptions.from_report(settings).model_copy(update={  # the options the pages were parsed with
        "restructure": RestructureOptions(enabled=True, merge_tables=not args.no_merge_tables,
                                          relevel_titles=not args.no_relevel_titles, concatenate=args.concatenate)})
    texts = assemble_document(pages, options)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    for n, text in enumerate(texts):
        Path(args.out, f"page_{n}.json").write_text(json.dumps(text.pruned, indent=2, ensure_ascii=False))
    Path(args.out, "document.md").write_text(concatenate_markdown([t.markdown for t in texts]).lstrip("\n"))
    print(f"wrote {len(texts)} page(s) and document.md to {args.out}")
    return 0


def _demo(args) -> int:
    from serve_app.demo import run_demo

    spec = Path(args.spec)
    if not spec.is_file():
        print(f"error: {spec} not found; try examples/page.json", file=sys.stderr)
        return 2
    print(f"model requests planned for {spec}:")
    markdown = run_demo(spec, Path(args.out))
    print(f"\n--- {args.out}/page.md ---\n{markdown}\n--- also: page.json, imgs/, layout_*.jpg ---")
    return 0


def _parse(args) -> int:
    from serve_app.client import parse_files, stream_files

    options = {"visualize": args.visualize}
    if args.page_ranges:
        options["pageRanges"] = args.page_ranges
    if args.stream:
        return 1 if stream_files(args.files, args.url, args.api_key, options) else 0
    return 1 if parse_files(args.files, args.url, args.api_key, args.workers, options, args.jobs_over) else 0


def _serve(args) -> int:
    from serve_app.launch import serve_forever

    return serve_forever(args.config, args.host, args.port, args.set, args.num_cpus)


def main(argv=None) -> int:
    from serve_app.launch import add_overrides_flag

    parser = argparse.ArgumentParser(prog="python -m serve_app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="run the service from a Serve config file until Ctrl-C")
    env = os.environ.get
    srv.add_argument("config", nargs="?", default=env("PADDLEOCR_VL_CONFIG", "configs/cpu.yaml"),
                     help="Serve config file (default: $PADDLEOCR_VL_CONFIG or configs/cpu.yaml)")
    srv.add_argument("--host", default=env("PADDLEOCR_VL_HOST"),
                     help="HTTP host instead of the config's (0.0.0.0 in a container); $PADDLEOCR_VL_HOST")
    srv.add_argument("--port", type=int, default=env("PADDLEOCR_VL_PORT"), help="HTTP port; $PADDLEOCR_VL_PORT")
    add_overrides_flag(srv)
    srv.add_argument("--num-cpus", type=float, default=env("PADDLEOCR_VL_NUM_CPUS"),
                     help="CPUs Ray is told (default: the machine's, at least what the config reserves)")
    srv.set_defaults(func=_serve)
    demo = sub.add_parser("demo", help="assemble a recorded page (layout detections + model answers)")
    demo.add_argument("spec", nargs="?", default="examples/page.json")
    demo.add_argument("--out", default="out")
    demo.set_defaults(func=_demo)
    par = sub.add_parser("parse", help="send files to a running server; write FILE.md and FILE.json beside them")
    par.add_argument("files", nargs="+")
    par.add_argument("--url", default="http://127.0.0.1:8000")
    par.add_argument("--api-key", default=None)
    par.add_argument("--workers", type=int, default=4, help="documents in flight at once")
    par.add_argument("--pages", dest="page_ranges", default=None, help="page ranges, e.g. 1-3,7")
    par.add_argument("--visualize", action="store_true", help="also return layout images (larger responses)")
    par.add_argument("--jobs-over", type=int, default=20, metavar="N",
                     help="documents of more than N pages go through the job API: per-page progress, and a "
                     "command stopped and started again picks the job up (FILE.job.json) (default 20)")
    par.add_argument("--stream", action="store_true", help="print each page's Markdown as soon as it is done")
    par.set_defaults(func=_parse)
    res = sub.add_parser("restructure", help="merge tables / re-level titles across prunedResult pages")
    res.add_argument("results", nargs="+", help="prunedResult JSON files, one per page, in page order")
    res.add_argument("--out", default="out")
    res.add_argument("--no-merge-tables", action="store_true")
    res.add_argument("--no-relevel-titles", action="store_true")
    res.add_argument("--concatenate", action="store_true", help="one result for the whole document")
    res.set_defaults(func=_restructure)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
