"""The ControlNet and LoRA stages of the demo model's training (the base model stays frozen)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from tools.demo_model import models
from tools.demo_model.trainlib import Clock, Pool, diffusion_loss, fused, load, log, noised, save


def _frozen(*modules) -> None:
    for m in modules:
        m.requires_grad_(False)
        m.eval()


def _scheduler(device):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler.from_config(models.SCHEDULER_CONFIG)
    sched.alphas_cumprod = sched.alphas_cumprod.to(device)
    return sched


def stage_control(args, device, vae, tok, unet, te, resume: Path | None):
    """ControlNet on shape masks and outlines (50/50); captions name the shape half of the time."""
    _frozen(unet, te)
    cn = models.build_controlnet(unet).to(device)
    if resume and (resume / "controlnet.safetensors").exists():
        cn.load_state_dict(load(resume / "controlnet.safetensors"))
        log(f"control: resumed from {resume}")
    cn.train()
    log(f"control: ControlNet {sum(p.numel() for p in cn.parameters()) / 1e6:.2f}M params")
    opt = torch.optim.AdamW(cn.parameters(), lr=args.lr_control, betas=(0.9, 0.99), weight_decay=0.0, **fused(device))
    sched = _scheduler(device)
    pool = Pool(args.pool_control, vae, tok, device, seed=args.seed + 20, control=True, shape_word_p=0.5)
    empty = models.tokenize(tok, [""])[0].to(device)
    clock, amp = Clock(args.budget["control"], warmup=100), device.type == "cuda"
    step, t0 = 0, time.time()
    while not clock.done():
        lat, ids, hint = pool.batch(args.batch_control, empty)
        noisy, noise, t = noised(lat, sched)
        for g in opt.param_groups:
            g["lr"] = args.lr_control * clock.lr_factor(step)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            with torch.no_grad():
                ctx = te(ids)[0]
            down, mid = cn(noisy, t, ctx, controlnet_cond=hint, return_dict=False)
            pred = unet(noisy, t, ctx, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        loss = diffusion_loss(pred, noise, t, sched.alphas_cumprod)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(cn.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0:
            log(f"control step {step} loss {loss.item():.4f} {step / (time.time() - t0):.2f} it/s")
    log(f"control: {step} steps x {args.batch_control} in {time.time() - t0:.0f}s, "
        f"{step / (time.time() - t0):.2f} it/s")
    save(cn.state_dict(), "controlnet.safetensors")
    del pool
    return cn.eval()


def stage_lora(args, device, vae, tok, unet, te, resume: Path | None):
    """A rank-8 LoRA on the UNet's attention blocks that turns fills striped."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    _frozen(unet, te)
    config = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_rank, init_lora_weights="gaussian",
                        target_modules=models.LORA_TARGETS)
    unet.add_adapter(config)
    if resume and (resume / "lora_peft.safetensors").exists():
        set_peft_model_state_dict(unet, load(resume / "lora_peft.safetensors"))
        log(f"lora: resumed from {resume}")
    params = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    log(f"lora: {sum(p.numel() for p in params) / 1e3:.1f}k params in {len(params) // 2} layers")
    opt = torch.optim.AdamW(params, lr=args.lr_lora, betas=(0.9, 0.99), weight_decay=0.0, **fused(device))
    sched = _scheduler(device)
    pool = Pool(args.pool_lora, vae, tok, device, seed=args.seed + 30, striped=True)
    empty = models.tokenize(tok, [""])[0].to(device)
    clock, amp = Clock(args.budget["lora"], warmup=50), device.type == "cuda"
    step, t0 = 0, time.time()
    while not clock.done():
        lat, ids, _ = pool.batch(args.batch_lora, empty)
        noisy, noise, t = noised(lat, sched)
        for g in opt.param_groups:
            g["lr"] = args.lr_lora * clock.lr_factor(step)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            with torch.no_grad():
                ctx = te(ids)[0]
            pred = unet(noisy, t, ctx).sample
        loss = diffusion_loss(pred, noise, t, sched.alphas_cumprod)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0:
            log(f"lora step {step} loss {loss.item():.4f} {step / (time.time() - t0):.2f} it/s")
    log(f"lora: {step} steps x {args.batch_lora} in {time.time() - t0:.0f}s, {step / (time.time() - t0):.2f} it/s")
    save(get_peft_model_state_dict(unet), "lora_peft.safetensors")
    del pool
    unet.eval()
    return unet
