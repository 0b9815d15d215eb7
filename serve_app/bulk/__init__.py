"""Bulk corpora as one Ray job: every document parsed once, resumable, Parquet out.

    ray job submit --address http://HEAD:8265 -- \\
        python -m serve_app.bulk --input s3://bucket/pdfs/ --output s3://bucket/parsed/ --config app.yaml

Input: a directory, a glob (``dir/**/*.pdf``), a manifest (``.txt`` lines, ``.jsonl`` with
``path``, ``.parquet`` with a ``path`` column; paths or http(s) URLs), local or any filesystem
pyarrow reads (s3://, gs://). Ray Data streams pages through rendering tasks (CPU), a layout actor
pool and a recognition actor pool (GPU, in-process engine), or through a running Serve application
with ``--serve-url``. The driver reassembles documents and commits each one as it finishes (then
compacts them into Parquet shards); a re-submitted job, even after the driver was killed, skips
documents already written with the same content hash and config fingerprint.
"""

from serve_app.bulk.config import BulkConfig, parse_args
from serve_app.bulk.driver import main, run
from serve_app.bulk.io import list_inputs
from serve_app.bulk.output import Output

__all__ = ["BulkConfig", "Output", "list_inputs", "main", "parse_args", "run"]
