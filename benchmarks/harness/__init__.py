"""What every scenario shares: app configs per setup (``apps``), a Serve application on 127.0.0.1
for the length of a run (``server``), corpora (``corpora``), HTTP load (``load``), the pipeline in
one process (``inprocess``), memory (PSS, the object store apart: ``memory``) and CPU by process
(``processes``), and the one results writer (``results``)."""
