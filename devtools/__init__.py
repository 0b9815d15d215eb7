"""What the tests and the benchmarks build with, kept out of the product packages (never installed):
generated documents (``documents``, ``generators``), tiny checkpoints (``tiny_models``), a real Ray
cluster on 127.0.0.1 (``ray_cluster``), a Docker daemon of the tests' own (``docker_daemon``) and
the official PaddleX helpers the differential tests and ``benchmarks.document_logic`` compare with
(``official``). Import them from the repository root (``python -m pytest``, ``python -m benchmarks.…``)."""
