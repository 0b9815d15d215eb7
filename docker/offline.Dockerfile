# The offline GPU image: the GPU image with the weights baked in, from local directories (the
# build context), so it starts with no model hub and no volume. `make image-gpu-offline
# MODELS=/path/to/models`, where MODELS holds PaddleOCR-VL/ and PP-DocLayoutV2/ (Hugging Face
# snapshots: `huggingface-cli download PaddlePaddle/PaddleOCR-VL --local-dir models/PaddleOCR-VL`).
ARG IMAGE=paddleocr-vl-serve:gpu
FROM ${IMAGE}
COPY --chown=root:root PaddleOCR-VL /models/PaddleOCR-VL
COPY --chown=root:root PP-DocLayoutV2 /models/PP-DocLayoutV2
# The GPU image already points the stages at /models (its PADDLEOCR_VL_SET).
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
