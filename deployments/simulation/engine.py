"""``engine: simulated``: vLLM serving PaddleOCR-VL-0.9B, step by step, on a simulated GPU.

Per block, the model's own image processor (PaddleOCR-VL's: resize within min/max pixels,
normalise, 14-px patches) runs for real in the replica, on one worker thread beside its event
loop, as vLLM 0.32's front end runs it (``vllm/renderers/base.py``: ``_mm_executor``, a
single-worker ``ThreadPoolExecutor``: multimodal processing does not block the event loop, and
blocks are processed one at a time, in order). The block then waits for the scheduler, which
models vLLM V1's continuous batching: every step, decoding sequences take one token each from
``max_num_batched_tokens``, then waiting sequences are admitted (up to ``max_num_seqs`` running)
with chunked prefill of their image and prompt tokens; the vision encoder runs on an image when
its sequence is first scheduled. A step lasts ``costs.step_seconds``. Generated lengths come from
``costs.output_tokens``; a cancelled caller aborts its sequence.

The scheduler runs on a thread of its own, as vLLM's EngineCore runs in a process of its own: its
steps go on while the front end is busy (a scheduler on the replica's event loop would wait for
it, and the card would look idler than it is). It sleeps through each step (no CPU) against a GPU
clock, so a late wake-up (the GIL) does not lengthen the timeline: the next step starts when the
last one ended on the card.

The scheduler's own CPU (its thread's clock) is counted apart, as ``core_cpu_s``: it stands in for
vLLM's EngineCore process, which is the engine's, not the data path's.

Config: ``recognizer.simulated_gpu`` (a profile of ``profiles.PROFILES``),
``recognizer.simulated_image_processor`` (``run``; ``sizes`` computes only the processor's output
size: a diagnostic of the data path without the processor's CPU), and in ``engine_kwargs`` the
vLLM names ``max_num_seqs`` (256) and ``max_num_batched_tokens`` (16384).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from deployments.labels import PROMPTS
from deployments.recognizer.engines import GenerationRequest, GenerationResult
from deployments.simulation import profiles as P
from deployments.simulation.costs import StepWork, output_tokens, step_seconds

TASK_OF_PROMPT = {prompt: task for task, prompt in PROMPTS.items()}
#: How far the scheduler's thread may wake late (the GIL, the OS) and still have its next step
#: start when the last one ended on the card; later than that, the card was idle meanwhile.
CLOCK_SLACK_S = 0.02


@dataclass(eq=False)
class Sequence:
    prefill: int  # image + prompt tokens
    patches: int
    target: int  # tokens to generate
    task: str
    future: asyncio.Future
    prefilled: int = 0
    generated: int = 0
    encoded: bool = False
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class EngineStats:
    """What the engine did since it started (or since ``reset``): busy time, steps, batch sizes."""

    since: float = field(default_factory=time.monotonic)
    busy_s: float = 0.0
    steps: int = 0
    running_sum: int = 0  # Σ over steps of the sequences in the batch
    tokens_generated: int = 0
    prefill_tokens: int = 0
    images: int = 0
    finished: int = 0
    aborted: int = 0
    processor_cpu_s: float = 0.0  # the image processor's CPU time (its thread's clock)
    core_cpu_s: float = 0.0  # the scheduler's CPU time (its thread's clock): vLLM's EngineCore's stand-in

    def report(self, profile: str) -> dict:
        wall = time.monotonic() - self.since
        return {"profile": profile, "wall_s": round(wall, 3), "busy_s": round(self.busy_s, 3),
                "busy_fraction": round(self.busy_s / wall, 4) if wall else 0.0, "steps": self.steps,
                "mean_running": round(self.running_sum / self.steps, 2) if self.steps else 0.0,
                "tokens_generated": self.tokens_generated, "prefill_tokens": self.prefill_tokens,
                "images": self.images, "finished": self.finished, "aborted": self.aborted,
                "processor_cpu_s": round(self.processor_cpu_s, 3), "core_cpu_s": round(self.core_cpu_s, 3)}


class SimulatedEngine:
    name = "simulated"
    tasks = frozenset(PROMPTS)
    simulated = True  # figures from this engine are labelled "simulated <profile>"

    def __init__(self, config):
        self.config = config
        self.profile_name = config.simulated_gpu
        self.profile = P.PROFILES[config.simulated_gpu]
        kwargs = config.engine_kwargs or {}
        self.max_num_seqs = int(kwargs.get("max_num_seqs", 256))
        self.max_batched_tokens = int(kwargs.get("max_num_batched_tokens", 16384))
        self.sizes_only = config.simulated_image_processor == "sizes"
        self.processor = None
        self.mm_thread: Optional[ThreadPoolExecutor] = None  # vLLM's _mm_executor: one thread
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.lock = threading.Condition()  # guards waiting, running and totals (the scheduler's thread)
        self.core: Optional[threading.Thread] = None
        self.stopping = False
        self.holding = False
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.totals = EngineStats()

    async def start(self) -> None:
        from transformers.models.paddleocr_vl.image_processing_pil_paddleocr_vl import PaddleOCRVLImageProcessorPil

        # PaddleOCR-VL-0.9B's preprocessor_config.json: 14-px patches merged 2×2, mean/std 0.5.
        self.processor = PaddleOCRVLImageProcessorPil(patch_size=P.PATCH, merge_size=P.MERGE, temporal_patch_size=1,
                                                      image_mean=[0.5] * 3, image_std=[0.5] * 3)
        self.mm_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mm-processor")
        self.loop = asyncio.get_running_loop()
        self.core = threading.Thread(target=self._core, name="simulated-engine-core", daemon=True)
        self.core.start()

    # -- requests ------------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.core is None:
            raise RuntimeError("the simulated engine is not started")
        patches, spent = await asyncio.get_running_loop().run_in_executor(self.mm_thread, self._process, request)
        task = TASK_OF_PROMPT.get(request.prompt, "ocr")
        seed = zlib.crc32(np.ascontiguousarray(request.image[::8, ::8]).tobytes() + request.prompt.encode())
        sequence = Sequence(prefill=patches // P.MERGE**2 + P.PROMPT_TOKENS, patches=patches, task=task,
                            target=output_tokens(task, seed, request.max_new_tokens),
                            future=asyncio.get_running_loop().create_future())
        with self.lock:
            self.totals.processor_cpu_s += spent
            self.waiting.append(sequence)
            self.lock.notify()
        try:
            return await sequence.future
        except asyncio.CancelledError:
            self._abort(sequence)
            raise

    def _process(self, request: GenerationRequest) -> tuple[int, float]:
        """The image processor on one block (on the mm-processor thread): its patches, its CPU seconds."""
        began = time.thread_time()
        if self.sizes_only:  # what vLLM asks of the processor when it has no image: the patch count
            height, width = request.image.shape[:2]
            patches = self.processor.get_number_of_image_patches(
                height, width, {"min_pixels": request.min_pixels, "max_pixels": request.max_pixels})
            return int(patches), time.thread_time() - began
        out = self.processor(images=[request.image], return_tensors="np",
                             size={"shortest_edge": request.min_pixels, "longest_edge": request.max_pixels})
        return int(np.prod(out["image_grid_thw"][0])), time.thread_time() - began

    def _abort(self, sequence: Sequence) -> None:
        with self.lock:
            if sequence in self.running:
                self.running.remove(sequence)
            elif sequence in self.waiting:
                self.waiting.remove(sequence)
            else:
                return
            self.totals.aborted += 1

    def unfinished(self) -> int:
        with self.lock:
            return len(self.waiting) + len(self.running)

    def stats(self, reset: bool = False) -> dict:
        with self.lock:
            report = self.totals.report(self.profile_name)
            if reset:
                self.totals = EngineStats()
        return report

    @contextlib.contextmanager
    def held(self):
        """The card does not step inside this block: requests queue up, and leaving it lets the
        scheduler see them all at once (a capacity measurement: the engine fed with every block)."""
        with self.lock:
            self.holding = True
        try:
            yield
        finally:
            with self.lock:
                self.holding = False
                self.lock.notify()

    # -- the scheduler (its own thread) --------------------------------------------------------
    def _core(self) -> None:
        clock = 0.0  # when the card finished its last step
        cpu = time.thread_time()  # this thread's CPU not yet counted in the totals
        while True:
            with self.lock:
                idle = False
                while (self.holding or not self.waiting and not self.running) and not self.stopping:
                    self.lock.wait()
                    idle = True
                if self.stopping:
                    return
                work, prefill, decode = self._schedule()
            seconds = step_seconds(self.profile, work)
            now = time.monotonic()
            clock = (now if idle or clock < now - CLOCK_SLACK_S else clock) + seconds
            time.sleep(max(0.0, clock - time.monotonic()))
            with self.lock:
                stats = self.totals
                stats.busy_s += seconds
                stats.steps += 1
                stats.running_sum += len(prefill) + len(decode)
                stats.prefill_tokens += work.prefill_tokens
                stats.images += len(work.images)
                done = self._advance(prefill, decode)
                now_cpu = time.thread_time()
                stats.core_cpu_s += now_cpu - cpu
                cpu = now_cpu
            for sequence, result in done:
                self.loop.call_soon_threadsafe(_resolve, sequence.future, result)

    def _schedule(self) -> tuple[StepWork, list[tuple[Sequence, int]], list[Sequence]]:
        work, budget = StepWork(), self.max_batched_tokens
        decode = [s for s in self.running if s.prefilled == s.prefill][:budget]
        budget -= len(decode)
        work.decode_tokens = work.logits = len(decode)
        work.decode_context = sum(s.prefill + s.generated for s in decode)
        prefill: list[tuple[Sequence, int]] = []

        def take(sequence: Sequence) -> None:
            nonlocal budget
            chunk = min(sequence.prefill - sequence.prefilled, budget)
            budget -= chunk
            prefill.append((sequence, chunk))
            work.prefill_tokens += chunk
            work.prefill_context += chunk * sequence.prefilled + chunk * (chunk + 1) // 2
            if not sequence.encoded:
                work.images.append(sequence.patches)
            if sequence.prefilled + chunk == sequence.prefill:
                work.logits += 1

        for sequence in [s for s in self.running if s.prefilled < s.prefill]:  # chunked prefills go on
            if budget > 0:
                take(sequence)
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:  # then new ones
            self.running.append(self.waiting.popleft())
            take(self.running[-1])
        return work, prefill, decode

    def _advance(self, prefill: list[tuple[Sequence, int]], decode: list[Sequence]) -> list[tuple[Sequence, GenerationResult]]:
        """The step's tokens applied; the sequences it finished, with their results."""
        done = []
        for sequence, chunk in prefill:
            sequence.encoded = True
            sequence.prefilled += chunk
            if sequence.prefilled == sequence.prefill:
                sequence.generated = 1
        for sequence in decode:
            sequence.generated += 1
        for sequence in itertools.chain((s for s, _ in prefill), decode):
            if sequence.generated >= sequence.target and sequence in self.running:
                self.running.remove(sequence)
                self.totals.tokens_generated += sequence.generated
                self.totals.finished += 1
                done.append((sequence, GenerationResult(answer(sequence.task, sequence.target), sequence.target,
                                                        "stop")))
        return done

    async def check_health(self) -> None:
        if self.core is None or not self.core.is_alive():
            raise RuntimeError("the simulated engine is not running")

    async def shutdown(self) -> None:
        if self.core is not None:
            with self.lock:
                self.stopping = True
                self.lock.notify()
            await asyncio.to_thread(self.core.join)
            self.core = None
        if self.mm_thread is not None:
            self.mm_thread.shutdown(wait=False, cancel_futures=True)
            self.mm_thread = None
        with self.lock:
            left = [*self.waiting, *self.running]
            self.waiting.clear()
            self.running.clear()
        for sequence in left:
            if not sequence.future.done():
                sequence.future.set_exception(RuntimeError("the simulated engine stopped"))


def _resolve(future: asyncio.Future, result: GenerationResult) -> None:
    if not future.done():  # a cancelled caller's future stays cancelled
        future.set_result(result)


def answer(task: str, tokens: int) -> str:
    """Text of about ``tokens`` tokens in the shape the task's post-processing expects."""
    if task == "table":
        rows = max(1, tokens // 12)
        return "".join("<fcel>cell<fcel>value<fcel>total<nl>" for _ in range(rows))
    if task == "formula":
        return " + ".join(f"x_{{{i}}}" for i in range(max(1, tokens // 5)))
    words = ("simulated", "text", "of", "a", "block", "read", "on", "a", "modelled", "card")
    return " ".join(words[i % len(words)] + (str(i // len(words)) if i % len(words) == 0 else "")
                    for i in range(max(1, round(tokens / 1.3))))
