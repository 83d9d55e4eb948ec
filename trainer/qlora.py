"""The QLoRA recipe: a 4-bit NF4 base (double quantization), LoRA on every linear projection,
trained with TRL's SFTTrainer on samples that our encoder already tokenized and masked, packed
best-fit and padding-free, by default behind one shared copy of the persona card
(trainer/card_packing.py). One code path for Qwen2.5-3B on a GPU and SmolLM2 on a CPU.

The loss goes through TRL's fused LM head (SFTTrainer.compute_loss calls the model with
`fused_lm_head=True`): the vocabulary projection and the cross-entropy run in tiles of 4,096
tokens x 32,768 vocabulary entries, recomputed in the backward pass, so the full (tokens x
vocabulary) logits never exist. Only the trained positions (the persona's replies) are projected,
on CPU and CUDA alike (`score_only_trained_positions`). `trainer plan` counts that term.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from trainer.card_packing import collator_for as card_collator_for
from trainer.card_packing import pack_samples
from trainer.card_packing import supports as supports_card_mask
from trainer.card_packing import use_card_attention
from trainer.encode import IGNORE, encode
from trainer.profile import Profile

log = logging.getLogger(__name__)


@dataclass
class TokenCounts:
    """What the training steps processed: all positions, padding, trained (labelled) tokens and
    micro-batches (after a run on several processes: summed over all of them, with the slowest
    process's time)."""

    positions: int = 0
    padding: int = 0
    trained: int = 0
    seconds: float = 0.0
    micro_batches: int = 0

    def over_all_processes(self) -> TokenCounts:
        from trainer.distributed import total

        (positions, padding, trained, micro_batches), (seconds,) = total(
            [self.positions, self.padding, self.trained, self.micro_batches], [self.seconds])
        return TokenCounts(int(positions), int(padding), int(trained), seconds, int(micro_batches))

    @property
    def padding_fraction(self) -> float:
        return self.padding / self.positions if self.positions else 0.0

    @property
    def trained_per_second(self) -> float:
        return self.trained / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return (self.positions - self.padding) / self.seconds if self.seconds else 0.0


class CountsTokens:
    """Trainer mixin: counts the tokens of every training step and the time spent in them."""

    def __init__(self, *args, **kwargs):
        self.token_counts = TokenCounts()
        super().__init__(*args, **kwargs)

    def training_step(self, model, inputs, num_items_in_batch=None):
        counts = self.token_counts
        ids = inputs["input_ids"]
        counts.positions += ids.numel()
        mask = inputs.get("attention_mask")
        if mask is not None and mask.dim() == 2:  # a 4D mask is shared-card packing's, which has no padding
            counts.padding += int((mask == 0).sum())
        counts.trained += int((inputs["labels"] != IGNORE).sum())
        counts.micro_batches += 1
        started = time.perf_counter()
        loss = super().training_step(model, inputs, num_items_in_batch)
        wait_for_the_device()  # a GPU returns with the backward pass still queued: count it in this step
        counts.seconds += time.perf_counter() - started
        return loss


def wait_for_the_device() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class CountsCardPackedTokens:
    """Trainer mixin for shared-card packing: TRL counts a batch's tokens as the sum of its
    attention mask, which for a 4D mask is the number of query-key pairs; count positions."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mask = inputs.get("attention_mask")
        if mask is None or mask.dim() != 4 or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        before = self._total_train_tokens
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self._total_train_tokens = before + inputs["input_ids"].numel()
        self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return result


def encode_rows(tokenizer, rows: list[dict], profile: Profile) -> list[dict[str, list[int]]]:
    encoded = [encode(tokenizer, row, profile.prompt_format) for row in rows]
    too_long = [row["origin"] for row, e in zip(rows, encoded) if len(e["input_ids"]) > profile.max_seq_len]
    if too_long:
        # The data build already rejects samples longer than max_seq_len; this guards the invariant.
        raise UserError(f"{len(too_long)} sample(s) longer than max_seq_len {profile.max_seq_len}, first {too_long[0]}")
    return encoded


def tokenize_rows(tokenizer, rows: list[dict], profile: Profile):
    """One dataset row per sample; TRL packs them."""
    from datasets import Dataset

    encoded = encode_rows(tokenizer, rows, profile)
    return Dataset.from_dict({"input_ids": [e["input_ids"] for e in encoded], "labels": [e["labels"] for e in encoded]})


def card_packed_rows(tokenizer, rows: list[dict], profile: Profile):
    """Packed rows, each behind one copy of its samples' persona card (trainer/card_packing.py)."""
    from datasets import Dataset

    packed = pack_samples(tokenizer, rows, encode_rows(tokenizer, rows, profile), profile.prompt_format, profile.max_seq_len)
    columns = [row.columns() for row in packed]
    return Dataset.from_dict({key: [c[key] for c in columns] for key in ("input_ids", "labels", "position_ids", "segment_ids")})


def uses_shared_card(model, profile: Profile) -> bool:
    """Shared-card packing where it is exact: on with packing and an attention that takes a 4D mask."""
    if not (profile.packing and profile.shared_card):
        return False
    if not supports_card_mask(model):
        log.warning("shared_card: %s attention takes no 4D mask; training with TRL's packing (the card in every sample)",
                    model.config._attn_implementation)
        return False
    return True


def lora_config(profile: Profile):
    from peft import LoraConfig

    return LoraConfig(
        r=profile.lora.r,
        lora_alpha=profile.lora.alpha,
        lora_dropout=profile.lora.dropout,
        target_modules=profile.lora.target_modules,
        task_type="CAUSAL_LM",
    )


def sft_config(profile: Profile, output_dir: str, on_gpu: bool, shared_card: bool = False):
    from trl import SFTConfig

    if shared_card:  # rows packed by us: TRL must neither re-pack nor drop their position and segment columns
        packing = dict(packing=False, remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True})
    else:
        packing = dict(packing=profile.packing,
                       packing_strategy="bfd")  # best-fit decreasing, padding-free: rows concatenated, no pad tokens
    return SFTConfig(
        output_dir=output_dir,
        max_length=profile.max_seq_len,
        **packing,
        per_device_train_batch_size=profile.batch_size,
        per_device_eval_batch_size=profile.batch_size,
        gradient_accumulation_steps=profile.grad_accum,
        max_steps=profile.max_steps,
        num_train_epochs=profile.epochs,
        learning_rate=profile.learning_rate,
        lr_scheduler_type=profile.lr_scheduler,
        warmup_steps=profile.warmup_ratio,  # below 1: a share of the total steps
        weight_decay=profile.weight_decay,
        max_grad_norm=profile.max_grad_norm,
        optim=profile.optimizer,
        gradient_checkpointing=profile.gradient_checkpointing,
        bf16=on_gpu,
        # On a machine without a GPU, say so: with several processes (accelerate launch) this
        # selects the CPU's gloo backend instead of looking for GPUs.
        use_cpu=not on_gpu,
        ddp_find_unused_parameters=False,  # LoRA on every linear layer: every adapter weight gets a gradient
        eval_strategy="steps",
        eval_steps=profile.eval_every,
        save_strategy="steps",
        save_steps=profile.eval_every,
        save_total_limit=2,  # with load_best_model_at_end the best one is kept besides the latest
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=1,
        seed=profile.seed,
        data_seed=profile.seed,
        report_to=[],
        disable_tqdm=True,  # our own progress bar shows loss and tokens/s
        dataset_num_proc=None,
    )


def final_step_callback():
    """Evaluate and checkpoint at the last step too, so the end of training can be the best."""
    from transformers import TrainerCallback

    class _FinalStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                control.should_evaluate = control.should_save = True

    return _FinalStep()


@dataclass
class Interrupt:
    """First Ctrl-C: finish the current step, checkpoint, stop (resume later with --resume).
    Second Ctrl-C: stop at once."""

    requested: bool = False
    previous: object = None

    def install(self) -> None:
        import threading

        if threading.current_thread() is threading.main_thread():  # Python only lets the main thread catch signals
            self.previous = signal.signal(signal.SIGINT, self.handle)

    def uninstall(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step and saving a checkpoint (Ctrl-C again to stop at once)", flush=True)


def interrupt_callback(interrupt: Interrupt):
    from transformers import TrainerCallback

    from trainer.distributed import anyone

    class _OnInterrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            # Every process stops after the same step, whichever saw the Ctrl-C.
            if anyone(interrupt.requested):
                interrupt.requested = True
                control.should_save = control.should_training_stop = True

    return _OnInterrupt()


def progress_callback(counts_of):
    """A tqdm bar over optimizer steps with loss, tokens/s and ETA."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        bar = None
        loss = math.nan

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:  # one bar, however many processes train
                self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step", dynamic_ncols=True)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])
            if logs and "eval_loss" in logs and self.bar is not None:
                tqdm.write(f"step {state.global_step}: eval loss {logs['eval_loss']:.4f}")

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is None:
                return
            counts = counts_of()
            self.bar.set_postfix(loss="-" if math.isnan(self.loss) else f"{self.loss:.3f}", tok_s=f"{counts.tokens_per_second:.0f}",
                                 trained_tok_s=f"{counts.trained_per_second:.0f}", refresh=False)
            self.bar.update(state.global_step - self.bar.n)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()

    return _Progress()


@dataclass
class RunResult:
    interrupted: bool
    eval_loss_before: float | None
    counts: TokenCounts
    log_history: list = field(default_factory=list)


def keep_4bit_layers_differentiable(model) -> None:
    """Stop bitsandbytes from repacking CPU 4-bit weights into its inference layout.

    On a CPU with AVX512-BF16, a Linear4bit run in eval mode (any evaluation) permanently repacks
    its weight for a fast kernel that has no autograd: every later training step then drops the
    gradient through the frozen base projections, so earlier layers' adapters learn from wrong
    gradients while the loss still falls. Training keeps the differentiable layout; the bot's
    inference-only models keep the fast one.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def score_only_trained_positions() -> bool:
    """Make TRL's fused LM head project only the positions that carry a label, on CPU as on CUDA.

    TRL compacts them only where its Triton kernel runs, because on a compiling backend (Neuron)
    a varying count of positions would recompile every batch; elsewhere (CPU, CUDA without
    Triton) it scores every position and zeroes the unlabelled ones. Nothing is compiled on CPU,
    and in a shared-card row two positions in three (the card, the user's turns) carry no label,
    while the projection onto the 49,152-token vocabulary (forward, recomputed and differentiated
    in the backward pass) is over a quarter of a SmolLM2 step: compacting made the training
    bench's shared-card run 1.23x faster. The kept positions' values are the same; the others
    were zeroed anyway.
    Returns False, changing nothing but a warning, where TRL no longer has the switch this relies on.
    """
    import trl.trainer.utils as trl_utils
    from trl.kernels import chunked_logprob

    switch = getattr(trl_utils, "_use_triton", None)
    if switch is _compact_everywhere:
        return True
    if switch is not chunked_logprob._use_triton:
        log.warning("this TRL has no switch for the fused LM head's compaction: every position is projected")
        return False
    # Only the name in trl.trainer.utils (the fused forward's choice) changes: the kernel's own
    # choice between Triton and torch tiles stays chunked_logprob._use_triton.
    trl_utils._use_triton = _compact_everywhere
    return True


def _compact_everywhere(device) -> bool:
    # Eager devices only: a compiling backend (Neuron, XLA, HPU) keeps TRL's fixed shapes.
    return device.type in ("cpu", "cuda", "xpu", "mps")


def make_trainer(model, tokenizer, train_rows, eval_rows, profile: Profile, output_dir: str):
    """The SFTTrainer over our pre-tokenized, pre-masked rows (TRL packs them)."""
    import torch
    from transformers import PrinterCallback, set_seed
    from trl import SFTTrainer

    class PersonaTrainer(CountsTokens, CountsCardPackedTokens, SFTTrainer):
        pass

    on_gpu = torch.cuda.is_available()
    score_only_trained_positions()
    keep_4bit_layers_differentiable(model)
    shared = uses_shared_card(model, profile)
    if shared:
        use_card_attention(model)  # SDPA over each sample's own spans, not the whole masked row
    dataset = card_packed_rows if shared else tokenize_rows
    # TRL initialises the LoRA weights before the Trainer seeds anything: seed first, so the same
    # profile and data always give the same run.
    set_seed(profile.seed)
    trainer = PersonaTrainer(
        model=model,
        args=sft_config(profile, output_dir, on_gpu, shared),
        train_dataset=dataset(tokenizer, train_rows, profile),
        eval_dataset=dataset(tokenizer, eval_rows, profile),
        processing_class=tokenizer,
        peft_config=lora_config(profile),
        data_collator=card_collator_for(model) if shared else None,
    )
    if not on_gpu:
        # TRL stores QLoRA adapter weights in bf16 (the paper's GPU recipe). On CPU, bf16 buys
        # nothing and small updates vanish in its 8-bit mantissa: keep them in fp32.
        for parameter in trainer.model.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.float()
    trainer.remove_callback(PrinterCallback)  # the progress bar reports instead of raw dicts
    return trainer


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that was saved whole. The Trainer writes trainer_state.json last, so
    a kill during a save leaves a folder without it (or with half of it): such folders are
    removed, and the run resumes from the one before."""
    found = sorted((p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]))
    for checkpoint in reversed(found):
        try:
            json.loads((checkpoint / "trainer_state.json").read_text())
            if any(checkpoint.glob("adapter_model.*")):
                return checkpoint
        except (OSError, ValueError):
            pass
        log.warning("%s was not saved whole (the run was stopped while saving it); resuming from the one before", checkpoint.name)
        shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def run_training(trainer, resume: bool, eval_before: bool) -> RunResult:
    interrupt = Interrupt()
    trainer.add_callback(final_step_callback())
    trainer.add_callback(interrupt_callback(interrupt))
    trainer.add_callback(progress_callback(lambda: trainer.token_counts))
    before = None
    if eval_before:
        # The fresh LoRA B matrices are zero: this is the untuned base model's eval loss.
        before = float(trainer.evaluate()["eval_loss"])
        if trainer.is_world_process_zero():
            log.info("eval loss before training (base model): %.4f", before)
    checkpoint = last_complete_checkpoint(Path(trainer.args.output_dir)) if resume else None
    if resume and checkpoint is None:
        log.warning("no checkpoint was saved whole: the run starts again from its first step")
    interrupt.install()
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        interrupt.uninstall()
    counts = trainer.token_counts.over_all_processes()
    return RunResult(interrupt.requested, before, counts, list(trainer.state.log_history))
