"""The one training loop (pretrain and finetune), on Accelerate.

Accelerate handles devices, DDP / FSDP / DeepSpeed, mixed precision and gradient accumulation. The
loop adds what a long run needs: warmup then linear decay, ``save_state`` every N steps into
``checkpoints/step-N`` (renamed into place when complete, so a kill never leaves a half checkpoint),
``--resume auto`` that continues at the same step with the same data order, and ``metrics.jsonl``
with train and val statistics. Only the main process writes files.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from vidcap.artifacts import atomic_write_text
from vidcap.artifacts.damage import check_safetensors, damaged, read_json, reading
from vidcap.distributed import current_processes
from vidcap.errors import VidcapError, VidcapWarning, as_write_fault
from vidcap.training.settings import TrainConfig

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
_STATE_FILE = "trainer_state.json"
_RESUME = "rerun the same command with --resume auto: training goes on from the last checkpoint."
_WEIGHTS = "model.safetensors"  # Accelerate's save_state (unless FSDP / DeepSpeed shard it)


@dataclass(frozen=True)
class StepReport:
    """Progress after an optimizer step (for progress bars)."""

    step: int
    max_steps: int
    loss: float
    tokens_per_s: float
    lr: float


class EpochSampler(Sampler[tuple[int, int]]):
    """A fresh, seeded permutation per epoch, yielding ``(epoch, index)``.

    The data order is a function of (seed, epoch), and each example is asked for with its epoch, so
    datasets draw the same example in a persistent DataLoader worker as in the main process.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return iter([(self.epoch, int(i)) for i in order])

    def __len__(self) -> int:
        return self.size


def _checkpoints(out_dir: Path, run: str | None) -> list[Path]:
    """Complete checkpoints under ``out_dir/checkpoints`` of run ``run`` (any run when None),
    oldest first."""
    folder = out_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("step-*")):
        if (path / _STATE_FILE).is_file() and run in (None, _read_state(path).get("run")):
            found.append(path)
    return found


def _keep_metrics_until(path: Path, step: int) -> None:
    """On resuming at ``step``: keep the metrics lines up to it, so the steps a killed run logged
    after its last checkpoint are not logged twice; a torn last line goes too."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))


def _checkpoint_remedy(checkpoint: Path) -> str:
    return f"delete {checkpoint} to resume from the checkpoint before it, or rerun without --resume to start over"


def _read_state(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's ``trainer_state.json``: its step and the run it belongs to.

    Raises:
        VidcapError: it cannot be read or has no step.
    """
    path = checkpoint / _STATE_FILE
    state = read_json(path, _checkpoint_remedy(checkpoint))
    if isinstance(state.get("step"), bool) or not isinstance(state.get("step"), int):
        raise damaged(path, _checkpoint_remedy(checkpoint), "is damaged (it has no step)")
    return state


def _load_checkpoint(accelerator: Any, checkpoint: Path) -> int:
    """Restore the model, optimizer, scheduler and random states saved in ``checkpoint``; its step.

    Its files are checked first, so that a missing or cut one is named: the weights
    (safetensors headers) and the optimizer's and scheduler's torch files (zip archives, whose
    table of contents is at the end), which torch would report as a bare unpickling error.

    Raises:
        VidcapError: a file of it is missing or damaged.
    """
    remedy = _checkpoint_remedy(checkpoint)
    step = int(_read_state(checkpoint)["step"])
    sharded = any(p.is_dir() for p in checkpoint.iterdir())  # FSDP / DeepSpeed: their own layout
    if not sharded and not (checkpoint / _WEIGHTS).is_file():
        raise damaged(checkpoint / _WEIGHTS, remedy, "is missing")
    for path in sorted(checkpoint.glob("*.safetensors")):
        check_safetensors(path, remedy)
    for path in sorted(checkpoint.glob("*.bin")):
        with reading(path, remedy, zipfile.BadZipFile), zipfile.ZipFile(path):
            pass
    with reading(checkpoint, remedy, zipfile.BadZipFile, pickle.UnpicklingError, EOFError):
        accelerator.load_state(str(checkpoint))
    return step


def latest_checkpoint(out_dir: Path, run: str | None = None) -> Path | None:
    """The newest complete checkpoint of run ``run`` (a stage fingerprint; None: any run)."""
    done = _checkpoints(out_dir, run)
    return done[-1] if done else None


def resolve_resume(out_dir: Path, resume: str | None, run: str | None = None) -> Path | None:
    """``auto`` → the latest checkpoint of this run (or None to start fresh); a path → that one.

    Checkpoints of a run with other settings (another ``run`` fingerprint) are never resumed.
    """
    if resume is None:
        return None
    if resume == "auto":
        return latest_checkpoint(out_dir, run)
    path = Path(resume)
    if not (path / _STATE_FILE).is_file():
        raise VidcapError(
            f"{path} is not a vidcap checkpoint (no {_STATE_FILE}); use --resume auto or a checkpoints/step-N folder."
        )
    return path


def fresh_start_problem(out_dir: Path, run: str) -> str | None:
    """Why training must not start afresh in ``out_dir``: it holds checkpoints of this same run
    (a rerun of a stopped command without --resume would throw their steps away); None when it
    may."""
    latest = latest_checkpoint(out_dir, run)
    if latest is None:
        return None
    return (
        f"{out_dir} holds checkpoints of this same run, the latest after step "
        f"{_read_state(latest)['step']}: add --resume auto to continue from it, or --force to "
        "start over (deleting them)."
    )


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms and embeddings (as in BERT; keeps frozen rows frozen)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lowered = name.lower()
        if param.ndim < 2 or "norm" in lowered or "embed" in lowered or "shared" in lowered:
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


# Batches in a row with a NaN or infinite loss that stop a float16 run: its loss scaler skips a
# step whose gradients overflow, so one bad batch passes; several in a row is a model that
# diverged and will not come back. Without a scaler (float32, bf16) one is enough: a NaN loss
# gives NaN gradients, and AdamW NaN weights for good.
_DIVERGED_AFTER = 3


def _diverged(step: int, config: TrainConfig, scaled: bool) -> VidcapError:
    """The sentence for a training run whose loss became NaN or infinite (``scaled``: trained
    in float16, with a loss scaler)."""
    hint = f"lower --lr (it is {config.lr:g})"
    if scaled:
        hint += ", or train in bf16 or full precision (--mixed-precision)"
    return VidcapError(
        f"training diverged by step {step}: the loss became NaN or infinite, so the model is "
        f"not saved as finished; {hint} and start again with --force."
    )


def _ratios(totals: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: round(float(v[0] / v[1]), 6) for k, v in totals.items() if float(v[1]) > 0}


# Trackers whose package an extra of vidcap installs (pip install "vidcap[EXTRA]").
_TRACKER_EXTRAS = {"tensorboard": "tensorboard"}


def check_tracker(log_with: str | None) -> None:
    """Refuse a ``--log-with`` tracker that is unknown or not installed, with a sentence.

    Accelerate itself drops a tracker whose package is missing without a word (the run would log
    nothing), and an unknown name is a ValueError.

    Raises:
        VidcapError: naming the trackers there are, or what to install.
    """
    if log_with is None:
        return
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    if log_with not in LoggerType.list():
        raise VidcapError(
            f"the tracker {log_with!r} is unknown to Accelerate; use one of "
            f"{', '.join(t for t in LoggerType.list() if t != 'all')}."
        )
    if log_with != "all" and LoggerType(log_with) not in get_available_trackers():
        extra = _TRACKER_EXTRAS.get(log_with)
        how = f"pip install 'vidcap[{extra}]'" if extra else f"pip install {log_with}"
        raise VidcapError(f"the {log_with} tracker needs the {log_with} package: {how}.")


def train(
    objective: nn.Module,
    train_set: Dataset,
    val_set: Dataset | None,
    collate: Callable[[list[Any]], dict[str, torch.Tensor]],
    out_dir: str | Path,
    config: TrainConfig,
    resume: str | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    extra_eval: Callable[[nn.Module, int], dict[str, float]] | None = None,
    run: str | None = None,
) -> dict[str, Any]:
    """Train ``objective`` (a module whose ``forward(batch)`` returns ``(loss, stats)``).

    ``run`` (the stage's fingerprint) is written into every checkpoint; ``resume="auto"`` only
    continues a checkpoint of the same run, and a fresh start clears the others.

    ``extra_eval(unwrapped objective, step)`` may add val metrics (e.g. CIDEr); it is called on
    every process, so that it can share its work out, and the main process's are logged.
    Returns the final val metrics (empty without a val set) and run facts.
    """
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin, set_seed
    from transformers import get_linear_schedule_with_warmup

    check_tracker(config.log_with)
    out_dir = Path(out_dir)
    accelerator = Accelerator(
        # The schedule counts optimizer steps: stepped by hand once per step (Accelerate would
        # otherwise step it once per process, ending warmup and decay num_processes times early).
        step_scheduler_with_optimizer=False,
        # Epochs are one stream of batches: every optimizer step is exactly grad_accum batches
        # (no short step at an epoch's end), so step N always starts at batch N * grad_accum.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=config.grad_accum, sync_with_dataloader=False
        ),
        mixed_precision=config.mixed_precision,
        log_with=config.log_with,
        project_dir=str(out_dir),
        cpu=not torch.cuda.is_available(),
    )
    if (
        config.mixed_precision == "fp16"
        and accelerator.device.type == "cpu"
        and accelerator.is_main_process
    ):
        # Accelerate takes fp16 on a CPU and trains in float32: say so, not just record it.
        # (Not under DeepSpeed on GPUs, which does its own mixed precision: native_amp is off.)
        warnings.warn(
            "--mixed-precision fp16 needs a GPU; on the CPU this run trains in float32.",
            VidcapWarning,
            stacklevel=2,
        )
    set_seed(config.seed)
    if len(train_set) == 0:
        raise VidcapError("there are no training examples (is the train split empty?).")
    sampler = EpochSampler(len(train_set), config.seed)
    loader_workers = config.loader_workers
    if loader_workers is None:
        loader_workers = 2 if torch.cuda.is_available() else 0
    train_loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=sampler,
        collate_fn=collate,
        drop_last=len(train_set) >= config.batch_size * accelerator.num_processes,
        num_workers=loader_workers,
        persistent_workers=loader_workers > 0,
        # Its own generator: a DataLoader iterator draws a seed when created, and from the global
        # RNG that would move dropout's random stream depending on when batches are drawn.
        generator=torch.Generator().manual_seed(config.seed),
    )
    val_loader = (
        DataLoader(val_set, batch_size=config.batch_size, shuffle=False, collate_fn=collate)
        if val_set is not None and len(val_set)
        else None
    )
    optimizer = torch.optim.AdamW(_parameter_groups(objective, config.weight_decay), lr=config.lr)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(config.warmup_ratio * config.max_steps), config.max_steps
    )
    objective, optimizer, train_loader, scheduler = accelerator.prepare(
        objective, optimizer, train_loader, scheduler
    )
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    if config.log_with and accelerator.is_main_process:
        accelerator.init_trackers(
            "vidcap", config={k: v for k, v in asdict(config).items() if v is not None}
        )

    # The processes wait for each other (while the main one writes files) in vidcap's meetings
    # group, which waits as long as it takes; the launcher's group is for the training's own
    # collectives, and NCCL gives up on a wait after 10 minutes.
    wait_for_everyone = current_processes().barrier
    step = 0
    checkpoint = resolve_resume(out_dir, resume, run)
    if checkpoint is None and accelerator.is_main_process and (out_dir / CHECKPOINTS).is_dir():
        shutil.rmtree(out_dir / CHECKPOINTS)  # another run's: it would be pruned or resumed wrongly
    wait_for_everyone()
    if checkpoint is not None:
        step = _load_checkpoint(accelerator, checkpoint)
        if (
            step >= config.max_steps
            and resume not in (None, "auto")
            and accelerator.is_main_process
        ):
            warnings.warn(
                f"{checkpoint} is after step {step}, at or past --max-steps {config.max_steps}: "
                "nothing is trained; it is evaluated and saved as it is.",
                VidcapWarning,
                stacklevel=2,
            )
    batches_per_epoch = len(train_loader)
    metrics_path = out_dir / METRICS
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            metrics_path.unlink(missing_ok=True)
        else:
            _keep_metrics_until(metrics_path, step)

    def log(split: str, values: dict[str, float], **extra: Any) -> None:
        if accelerator.is_main_process:
            # NaN and infinity as null: bare NaN is not JSON (jq and JSON.parse refuse the file).
            finite = {k: v if math.isfinite(v) else None for k, v in values.items()}
            line = {"step": step, "split": split, **extra, **finite}
            with open(metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        if config.log_with:
            accelerator.log({f"{split}/{k}": v for k, v in values.items()}, step=step)

    def evaluate() -> dict[str, float]:
        if val_loader is None:
            return {}
        objective.eval()
        totals: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for batch in val_loader:
                _, stats = objective(batch)
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0) + v
        totals = {k: accelerator.reduce(v, "sum") for k, v in totals.items()}
        objective.train()
        values = _ratios(totals)
        if extra_eval is not None:  # on every process: it may share its work out
            values.update(extra_eval(accelerator.unwrap_model(objective), step))
        log("val", values)
        return values

    def save_checkpoint() -> None:
        folder = out_dir / CHECKPOINTS
        tmp, final = folder / f".tmp-step-{step:08d}", folder / f"step-{step:08d}"
        wait_for_everyone()
        if accelerator.is_main_process and tmp.exists():
            shutil.rmtree(tmp)  # left by a run killed while saving
        wait_for_everyone()
        try:
            accelerator.save_state(str(tmp))
            wait_for_everyone()
            if accelerator.is_main_process:
                (tmp / _STATE_FILE).write_text(json.dumps({"step": step, "run": run}))
        except Exception as e:
            # A full disk mid-save: the half checkpoint goes, giving its space back; the earlier
            # checkpoints are kept for --resume auto.
            fault = as_write_fault(e, folder, _RESUME)
            if accelerator.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            if fault is not None:
                raise fault from e
            raise
        if accelerator.is_main_process:
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in _checkpoints(out_dir, None)[: -config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        wait_for_everyone()

    # Batches in a row whose loss was NaN or infinite, counted on the device (no wait for it
    # each step) and read by every process at the same steps.
    non_finite_run = torch.zeros((), device=accelerator.device)
    scaled = accelerator.scaler is not None
    diverged_after = _DIVERGED_AFTER if scaled else 1

    def stop_if_diverged() -> None:
        diverged = (non_finite_run >= diverged_after).float()
        if float(accelerator.reduce(diverged, "sum")) > 0:
            raise _diverged(step, config, scaled)

    objective.train()
    totals: dict[str, torch.Tensor] = {}
    tokens, window_start = 0, time.perf_counter()
    micro = step * config.grad_accum

    def stream() -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
        """(epoch, batch) from where the run stands, epoch after epoch, as one stream."""
        epoch, skip = divmod(micro, batches_per_epoch)
        while True:
            loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
            # Accelerate's loaders keep their own epoch counter and pass it to the sampler and
            # the dataset when iterated; a resumed run must start that counter at the right epoch.
            loader.set_epoch(epoch)
            for batch in loader:
                yield epoch, batch
            epoch, skip = epoch + 1, 0

    batches = stream()
    try:
        for epoch, batch in batches if step < config.max_steps else ():
            with accelerator.accumulate(objective):
                loss, stats = objective(batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(objective.parameters(), config.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad()
            micro += 1
            non_finite_run = (non_finite_run + 1) * (~torch.isfinite(loss.detach())).float()
            tokens += int(batch["attention_mask"].sum())
            for k, v in stats.items():
                totals[k] = totals.get(k, 0) + v
            if not accelerator.sync_gradients:
                continue
            step += 1
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            tokens_per_s = tokens * accelerator.num_processes / elapsed
            if on_step is not None and accelerator.is_main_process:
                on_step(
                    StepReport(
                        step,
                        config.max_steps,
                        loss.item(),
                        tokens_per_s,
                        scheduler.get_last_lr()[0],
                    )
                )
            checks = (config.log_every, config.eval_every, config.save_every)
            if any(step % every == 0 for every in checks) or step == config.max_steps:
                # Before anything is logged, evaluated or saved (the last step's check is the
                # final weights'): a diverged model is not kept as a checkpoint or as final.
                stop_if_diverged()
            if step % config.log_every == 0 or step == config.max_steps:
                reduced = {k: accelerator.reduce(v, "sum") for k, v in totals.items()}
                log(
                    "train",
                    _ratios(reduced),
                    epoch=epoch,
                    lr=scheduler.get_last_lr()[0],
                    tokens_per_s=round(tokens_per_s, 1),
                )
                totals, tokens, window_start = {}, 0, time.perf_counter()
            if step % config.eval_every == 0 and step < config.max_steps:
                evaluate()
            if step % config.save_every == 0 or step == config.max_steps:
                save_checkpoint()
            if step >= config.max_steps:
                break
    finally:
        batches.close()  # ends the loader's iteration (and its worker processes)
    final = evaluate()
    if not all(math.isfinite(v) for k, v in final.items() if k.startswith("loss")):
        raise _diverged(step, config, scaled)
    # The trackers are finished by hand: Accelerator.end_training() would also destroy the
    # process group, which the processes still use after training (the stage's end).
    for tracker in accelerator.trackers:
        tracker.finish()
    wait_for_everyone()
    return {
        "val": final,
        "steps": step,
        "processes": accelerator.num_processes,
        "is_main": accelerator.is_main_process,
        "objective": accelerator.unwrap_model(objective),
    }
