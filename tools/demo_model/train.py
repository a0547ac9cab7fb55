"""Train the demo model from scratch on procedural scenes, in stages, each within a time budget.

    python -m tools.demo_model.train --stages vae,base --out OUT [--resume DIR] [--budget base=270 ...]

Stages (each saves diffusers-format weights under --out, so a later call resumes from them):
- vae:     AutoencoderKL on rendered scenes (L1 + MSE + gradient L1 + tiny KL), then latents
           normalised for SD1's scaling factor (models.normalise_vae_latents).
- base:    UNet + CLIP text encoder on a pool of encoded scenes (two captions each), SD1 noise
           schedule, epsilon prediction, offset noise, min-SNR weighting, 10% empty captions, EMA.
- control: ControlNet (copy of the UNet encoder) on shape masks / outlines, base model frozen.
- lora:    peft LoRA (rank 8) on the UNet's attention blocks, trained on striped fills.
- eval:    quick figures with the analyser on GPU-generated images (evaluate.py is the real one).

Files written: vae.safetensors, unet_ema.safetensors, te_ema.safetensors, train_raw.safetensors
(raw weights, fp16, to resume), controlnet.safetensors, lora_peft.safetensors, log.txt, samples.png.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from pathlib import Path

import torch

from tools.demo_model import data, models, trainlib
from tools.demo_model.trainlib import (
    Clock,
    Pool,
    diffusion_loss,
    fused,
    images_to_model,
    load,
    log,
    noised,
    save,
)


# ---------------------------------------------------------------------------------------------
def stage_vae(args, device) -> torch.nn.Module:
    vae = models.build_vae().to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr_vae, betas=(0.9, 0.99), weight_decay=0.0, **fused(device))
    clock, step, gen = Clock(args.budget["vae"], warmup=100), 0, torch.Generator().manual_seed(1)
    amp = device.type == "cuda"
    t0, seen = time.time(), 0
    while not clock.done():
        sc = data.sample_scenes(args.batch_vae, gen, device, exclude_held_out=False)
        striped = torch.rand(args.batch_vae, generator=gen) < 0.25
        x = images_to_model(data.render(sc, striped=striped, generator=gen)["image"])
        for g in opt.param_groups:
            g["lr"] = args.lr_vae * clock.lr_factor(step)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample()).sample.float()
        l1 = (rec - x).abs().mean()
        mse = ((rec - x) ** 2).mean()
        grad = ((rec.diff(dim=-1) - x.diff(dim=-1)).abs().mean() + (rec.diff(dim=-2) - x.diff(dim=-2)).abs().mean())
        kl = post.kl().float().mean()
        loss = l1 + mse + 0.5 * grad + 1e-6 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        seen += args.batch_vae
        if step % args.log_every == 0:
            log(f"vae step {step} l1 {l1.item():.4f} mse {mse.item():.5f} kl {kl.item():.1f} "
                f"{step / (time.time() - t0):.1f} it/s")
    log(f"vae: {step} steps, {seen} images, {time.time() - t0:.0f}s, {step / (time.time() - t0):.1f} it/s")
    vae.eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(99)
        sc = data.sample_scenes(args.norm_images, g, device, exclude_held_out=False)
        x = images_to_model(data.render(sc, striped=torch.rand(len(sc), generator=g) < 0.25, generator=g)["image"])
        before = vae.decode(vae.encode(x[:64]).latent_dist.mean).sample
        mean, std = models.normalise_vae_latents(vae, x)
        after = vae.decode(vae.encode(x[:64]).latent_dist.mean).sample
        psnr = -10 * torch.log10(((after / 2 + 0.5).clamp(0, 1) - (x[:64] / 2 + 0.5)).pow(2).mean())
        z = vae.encode(x[:1024]).latent_dist.mean * models.SCALING_FACTOR
        log(f"vae latent mean {[round(m, 3) for m in mean]} std {[round(s, 3) for s in std]}; after "
            f"normalising: mean {z.mean().item():.3f} std {z.std().item():.3f}; decode change "
            f"{(after - before).abs().max().item():.2e}; PSNR {psnr.item():.2f} dB")
    save(vae.state_dict(), "vae.safetensors")
    return vae


def stage_vae_decoder(args, device, vae) -> torch.nn.Module:
    """Fine-tune the decoder only: the latent space (and so the UNet) stays valid."""
    vae.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in params:
        p.requires_grad_(True)
    vae.decoder.train()
    opt = torch.optim.AdamW(params, lr=args.lr_vae_dec, betas=(0.9, 0.99), weight_decay=0.0, **fused(device))
    clock, gen, amp = Clock(args.budget["vaedec"], warmup=50), torch.Generator().manual_seed(2), device.type == "cuda"
    step, t0 = 0, time.time()
    while not clock.done():
        sc = data.sample_scenes(args.batch_vae_dec, gen, device, exclude_held_out=False)
        striped = torch.rand(args.batch_vae_dec, generator=gen) < 0.25
        x = images_to_model(data.render(sc, striped=striped, generator=gen)["image"])
        for g in opt.param_groups:
            g["lr"] = args.lr_vae_dec * clock.lr_factor(step)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            with torch.no_grad():
                z = vae.encode(x).latent_dist.sample()
            rec = vae.decode(z).sample.float()
        l1 = (rec - x).abs().mean()
        grad = ((rec.diff(dim=-1) - x.diff(dim=-1)).abs().mean() + (rec.diff(dim=-2) - x.diff(dim=-2)).abs().mean())
        loss = l1 + ((rec - x) ** 2).mean() + 0.5 * grad
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0:
            log(f"vae decoder step {step} l1 {l1.item():.4f} {step / (time.time() - t0):.1f} it/s")
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        g = torch.Generator().manual_seed(99)
        sc = data.sample_scenes(64, g, device, exclude_held_out=False)
        x = data.render(sc, striped=torch.rand(64, generator=g) < 0.25, generator=g)["image"]
        rec = (vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample / 2 + 0.5).clamp(0, 1)
        psnr = -10 * torch.log10((rec - x).pow(2).mean())
    log(f"vae decoder: {step} steps x {args.batch_vae_dec} in {time.time() - t0:.0f}s; PSNR {psnr.item():.2f} dB")
    save(vae.state_dict(), "vae.safetensors")
    return vae


def _ema_update(ema_params, params, decay: float) -> None:
    torch._foreach_lerp_(ema_params, [p.detach() for p in params], 1 - decay)


def stage_base(args, device, vae, tok, resume: Path | None):
    from diffusers import DDPMScheduler

    unet, te = models.build_unet().to(device), models.build_text_encoder().to(device)
    ema_unet, ema_te = copy.deepcopy(unet), copy.deepcopy(te)
    if resume and (resume / "unet_ema.safetensors").exists():
        ema_unet.load_state_dict(load(resume / "unet_ema.safetensors"))
        models.load_text_state(ema_te, load(resume / "te_ema.safetensors"))
        raw = resume / "train_raw.safetensors"
        if raw.exists():
            st = load(raw)
            unet.load_state_dict({k[5:]: v.float() for k, v in st.items() if k.startswith("unet.")})
            models.load_text_state(te, {k[3:]: v.float() for k, v in st.items() if k.startswith("te.")})
        else:
            unet.load_state_dict(ema_unet.state_dict())
            te.load_state_dict(ema_te.state_dict())
        log(f"base: resumed from {resume}")
    for m in (ema_unet, ema_te):
        m.requires_grad_(False)
    params = list(unet.parameters()) + list(te.parameters())
    ema_params = list(ema_unet.parameters()) + list(ema_te.parameters())
    n_unet = sum(p.numel() for p in unet.parameters())
    n_te = sum(p.numel() for p in te.parameters())
    log(f"base: UNet {n_unet / 1e6:.2f}M params, text encoder {n_te / 1e6:.2f}M params")
    opt = torch.optim.AdamW(params, lr=args.lr_base, betas=(0.9, 0.99), weight_decay=0.01, **fused(device))
    sched = DDPMScheduler.from_config(models.SCHEDULER_CONFIG)
    acp = sched.alphas_cumprod.to(device)
    sched.alphas_cumprod = acp
    pool = Pool(args.pool, vae, tok, device, seed=args.seed + 10 + (1000 if resume else 0))
    empty = models.tokenize(tok, [""])[0].to(device)
    clock = Clock(args.budget["base"], warmup=args.warmup)
    amp = device.type == "cuda"
    step, t0, last_save = 0, time.time(), time.time()
    while not clock.done():
        lat, ids, _ = pool.batch(args.batch, empty)
        noisy, noise, t = noised(lat, sched)
        for g in opt.param_groups:
            g["lr"] = args.lr_base * clock.lr_factor(step)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            ctx = te(ids)[0]
            pred = unet(noisy, t, ctx).sample
        loss = diffusion_loss(pred, noise, t, acp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _ema_update(ema_params, params, min(args.ema, (1 + step) / (10 + step)))
        step += 1
        if step % args.log_every == 0:
            log(f"base step {step} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e} "
                f"{step / (time.time() - t0):.2f} it/s")
        if step % args.refresh_every == 0:
            pool.refresh(0.1)
        if time.time() - last_save > args.save_every:
            _save_base(unet, te, ema_unet, ema_te)
            last_save = time.time()
    log(f"base: {step} steps x {args.batch} in {time.time() - t0:.0f}s, {step / (time.time() - t0):.2f} it/s")
    _save_base(unet, te, ema_unet, ema_te)
    del pool
    return ema_unet.eval(), ema_te.eval()


def _save_base(unet, te, ema_unet, ema_te) -> None:
    save(ema_unet.state_dict(), "unet_ema.safetensors")
    save(models.text_state(ema_te.state_dict()), "te_ema.safetensors")
    raw = {"unet." + k: v for k, v in unet.state_dict().items()}
    raw.update({"te." + k: v for k, v in models.text_state(te.state_dict()).items()})
    save(raw, "train_raw.safetensors", dtype=torch.float16)




# ---------------------------------------------------------------------------------------------
def stage_eval(args, device, vae, tok, unet, te, cn=None, lora: bool = False) -> dict:
    """Quick figures with the analyser on images generated here (evaluate.py is the real evaluation)."""
    from tools.demo_model import analyse, sample

    figures, shown = {}, []

    def score(images, colors, shapes):
        res = [analyse.analyse(im) for im in images]
        c = sum(r.color == col for r, col in zip(res, colors)) / len(res)
        s = sum(r.shape == sh for r, sh in zip(res, shapes)) / len(res)
        return res, c, s

    if lora:
        unet.disable_adapters()
    held = data.eval_prompts()
    prompts = [p for p, _ in held] * 2
    seeds = [1000 + i for i in range(len(prompts))]
    imgs = sample.generate(unet, te, vae, tok, prompts, seeds, steps=args.eval_steps)
    _, c, s = score(imgs, [t[0] for _, t in held] * 2, [t[1] for _, t in held] * 2)
    figures.update(heldout_color=c, heldout_shape=s)
    shown.append(imgs[:16])
    bare = data.bare_prompts()
    imgs = sample.generate(unet, te, vae, tok, [p for p, _, _ in bare], [7 + i for i in range(len(bare))],
                           steps=args.eval_steps)
    res, c, s = score(imgs, [b[1] for b in bare], [b[2] for b in bare])
    figures.update(bare_color=c, bare_shape=s, bare_striped=sum(r.striped for r in res) / len(res))
    shown.append(imgs[::5][:8])
    if cn is not None:
        g = torch.Generator().manual_seed(4321)
        tuples = [t for _, t in held][:40]
        sc = data.scenes_from_tuples(tuples, generator=g, device=device)
        r = data.render(sc, generator=g)
        hint = torch.cat([r["mask"][:20], r["edge"][20:40]]).expand(-1, 3, -1, -1).cpu()
        ps = [f"{'an' if t[0] == 'orange' else 'a'} {t[0]} shape on a {t[4]} background" for t in tuples]
        imgs = sample.generate(unet, te, vae, tok, ps, [55 + i for i in range(len(ps))], steps=args.eval_steps,
                               controlnet=cn, control=hint)
        res = [analyse.analyse(im) for im in imgs]
        gt = (r["mask"][:, 0] > 0.5).cpu().numpy()
        iou = [float((m.mask & g_).sum() / max(1, (m.mask | g_).sum())) for m, g_ in zip(res, gt)]
        figures.update(control_shape=sum(a.shape == t[1] for a, t in zip(res, tuples)) / len(res),
                       control_iou50=sum(i > 0.5 for i in iou) / len(iou),
                       control_color=sum(a.color == t[0] for a, t in zip(res, tuples)) / len(res))
        shown.append(imgs[:8])
    if lora:
        unet.enable_adapters()
        imgs = sample.generate(unet, te, vae, tok, [p for p, _, _ in bare], [7 + i for i in range(len(bare))],
                               steps=args.eval_steps)
        res, c, s = score(imgs, [b[1] for b in bare], [b[2] for b in bare])
        figures.update(lora_striped=sum(r.striped for r in res) / len(res), lora_color=c, lora_shape=s)
        shown.append(imgs[::5][:8])
    log("eval: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    sample.grid(torch.cat(shown)).save(os.fspath(trainlib.OUT / "samples.png"))
    return figures


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default="vae,base,eval", help="comma list of vae, base, control, lora, eval")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--resume", type=Path, help="folder with the files of an earlier call")
    p.add_argument("--budget", nargs="*", default=[], help="seconds per stage, e.g. base=270 control=120")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for a CPU check of every code path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], help="override a setting, e.g. batch=2048 lr_base=3e-4")
    a = p.parse_args(argv)
    a.budget = {"vae": 100, "vaedec": 45, "base": 270, "control": 120, "lora": 80} | {
        k: float(v) for k, v in (x.split("=") for x in a.budget)}
    big = not a.smoke
    a.batch_vae, a.lr_vae, a.norm_images = (64 if big else 4), 4e-4, (4096 if big else 16)
    # Steps are launch-bound (python + autocast casts), so batches are large.
    a.batch, a.lr_base, a.warmup, a.ema = (2048 if big else 8), 4e-4, 200, 0.999
    a.pool, a.refresh_every, a.save_every = (200_000 if big else 64), 200, 120
    a.batch_control, a.lr_control, a.pool_control = (1024 if big else 4), 5e-4, (60_000 if big else 32)
    a.batch_lora, a.lr_lora, a.lora_rank, a.pool_lora = (2048 if big else 8), 1e-3, 8, (40_000 if big else 32)
    a.batch_vae_dec, a.lr_vae_dec = (128 if big else 4), 2e-4
    a.log_every, a.eval_steps = (200 if big else 2), (20 if big else 2)
    for item in a.set:
        key, value = item.split("=", 1)
        if not hasattr(a, key):
            p.error(f"--set: unknown setting {key!r}")
        setattr(a, key, type(getattr(a, key))(float(value)) if not isinstance(getattr(a, key), str) else value)
    return a


def main(argv=None) -> int:
    from tools.demo_model import train_adapters

    args = parse_args(argv)
    trainlib.set_out(args.out)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    stages = args.stages.split(",")
    src = args.resume or args.out
    log(f"stages {stages} settings { {k: v for k, v in vars(args).items() if k not in ('stages', 'budget')} } on {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, "
        f"torch {torch.__version__}, budgets {args.budget}")
    tok = models.CaptionTokenizer(models.tokenizer())
    vae = stage_vae(args, device) if "vae" in stages else trainlib.load_vae(src, device)
    if "vaedec" in stages:
        vae = stage_vae_decoder(args, device, vae)
    vae.requires_grad_(False)
    if "base" in stages:
        unet, te = stage_base(args, device, vae, tok, args.resume)
    else:
        unet, te = trainlib.load_base(src, device)
    cn = None
    if "control" in stages:
        cn = train_adapters.stage_control(args, device, vae, tok, unet, te, args.resume)
    elif (src / "controlnet.safetensors").exists() and "eval" in stages:
        cn = models.build_controlnet(unet)
        cn.load_state_dict(load(src / "controlnet.safetensors"))
        cn = cn.to(device).eval()
    lora = "lora" in stages
    if lora:
        unet = train_adapters.stage_lora(args, device, vae, tok, unet, te, args.resume)
    if "eval" in stages:
        stage_eval(args, device, vae, tok, unet, te, cn, lora)
    log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
