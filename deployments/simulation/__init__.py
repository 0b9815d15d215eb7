"""Simulated GPU engines for capacity planning and load tests: a recognition engine that models
vLLM serving PaddleOCR-VL-0.9B step by step, and a PP-DocLayoutV2 layout backend. Their CPU work
(the model's image processor, the layout pre-processing) runs for real; only the GPU's time is
simulated (awaited or slept, using no CPU). Never chosen by ``auto``; every figure they produce is
labelled "simulated <profile>". Constants and sources: ``profiles.py``; the cost model: ``costs.py``."""
