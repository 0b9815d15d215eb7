# The offline GPU image: the GPU image with the weights baked in, from local directories (the
# build context), so it starts with no model hub and no volume. `make image-gpu-offline
# MODELS=/path/to/models`, where MODELS holds PaddleOCR-VL-1.6/ and PP-DocLayoutV3/ (Hugging Face
# snapshots: `huggingface-cli download PaddlePaddle/PaddleOCR-VL-1.6 --local-dir models/PaddleOCR-VL-1.6`).
ARG IMAGE=paddleocr-vl-serve:gpu
FROM ${IMAGE}
COPY --chown=root:root PaddleOCR-VL-1.6 /models/PaddleOCR-VL-1.6
COPY --chown=root:root PP-DocLayoutV3 /models/PP-DocLayoutV3
# The GPU image already points the stages at /models (its PADDLEOCR_VL_SET).
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
