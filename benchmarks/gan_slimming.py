"""GAN Slimming of a conditional DCGAN generator on Fashion-MNIST: FID and class accuracy against two baselines.

1. A feature classifier for FID (``slimkit.gan.fid``, trained once, cached under ``~/.cache/slimkit/gan``), and
   a second one (other seed, half width) whose features the distillation loss uses.
2. The teacher: ``dcgan_g`` trained as a conditional GAN against ``dcgan_d`` (non-saturating loss, Adam).
3. GS-32: ``gan_slim`` in float from a copy of the teacher (and its discriminator), MACs target 4x.
4. slim: ``gan_slim`` in float from a copy of the teacher to 4x fewer MACs and 6x fewer parameters.
5. GS-8 (``--gs8-from slim``, the default): the slim student continued with 8-bit weights and activations (LSQ
   QAT) inside the GS objective (GAN term against the slim run's discriminator, distillation from the float slim
   student), so the stored student is >= 20x smaller than the float teacher. ``--gs8-from teacher``: one joint
   run from a copy of the teacher (QAT, penalty and removal together, params target 6x), the earlier version.
6. distill_only: a uniformly thinned ``dcgan_g`` (width chosen for GS-32's MACs) trained from scratch on the
   distillation loss alone (no GAN term, no slimming).
7. two_step: the slim student (slimming in float to GS-8's parameter count), then 8-bit post-training
   quantization: the same channels and size as GS-8, quantization not trained.
8. ``--extra-weight-bits 4`` (a comma list): GS-4 (the same run as GS-8 with 4-bit weights, activations 8 bits)
   against two_step4 (the same float student, then W4A8 post-training quantization with the same calibration)
   and two_step4_mse (the same, weight ranges by the MSE observer: the stronger PTQ baseline at low widths).
9. ``--controls``: the float slim student itself and GS-8's phase run without quantization (``slim+gs``), to
   tell what PTQ costs and what the extra GS epochs do apart from quantization.

The teacher of each setting and seed is cached in ``--out-dir`` (state dicts; ``--no-teacher-cache`` retrains).

FID: Fréchet distance of the classifier's penultimate features, generated images vs test images (labels cycling
over the classes); ``real_fid`` is the same for real training images (the floor of the scale); class accuracy: the classifier's accuracy on the labels the images were generated for.

    python benchmarks/gan_slimming.py            # full training set, width 1.0 teacher (CPU hours)
    python benchmarks/gan_slimming.py --quick    # 10000 images, width 0.5 teacher, few epochs (CPU minutes)
    python benchmarks/gan_slimming.py --smoke    # 256 images, tiny models, a few steps: the code path only

Last line: one JSON object with teacher_fid, gs32_fid, gs32_macs_reduction, gs32_size_ratio, gs8_fid,
gs8_size_ratio, distill_only_fid, two_step_fid, class_accuracy_teacher, class_accuracy_gs8; with
``--extra-weight-bits B``: gsB_fid, gsB_size_ratio, two_stepB_fid, two_stepB_size_ratio, two_stepB_mse_fid, ...
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import slimkit  # noqa: E402
from slimkit.gan import GanSlimConfig, conditional_inputs, fid, gan_slim  # noqa: E402
from slimkit.gan.losses import d_loss, g_loss  # noqa: E402
from slimkit.gan.quant import quantize_generator, stored_bytes  # noqa: E402
from slimkit.prune.engine import build_graph  # noqa: E402
from slimkit.quant import QuantConfig  # noqa: E402

NOISE_DIM = 64
# defaults of the recorded quick run (docs/gan_slimming.md says how they were chosen)
D_POOL = 7
D_SPECTRAL_NORM = False
D_EMBED_STD = 0.02  # 1.0 until 2026-12-05: worse teachers on both seeds (docs/gan_slimming.md)
TEACHER_EPOCHS_QUICK = 8
# GS-8's quantization-aware phase: 2e-4 for the GS epochs until 2026-12-05; 5e-5 for twice as many epochs gave a
# lower held-out FID on seeds 0 and 1 (282.5 -> 258.2, 282.2 -> 257.3; docs/gan_slimming.md)
GS8_QAT_LR = 5e-5
GS8_QAT_EPOCHS_PER_GS_EPOCH = 2
LR_SCALE = 0.0
STRENGTH = 0.5
GS8_FROM = "slim"


def train_teacher(data, width: float, epochs: int, seed: int, pool: int = 1, spectral_norm: bool = False,
                  batch_size: int = 64, score=None, embed_std: float = 1.0) -> tuple[nn.Module, nn.Module, list[float]]:
    """A conditional DCGAN (generator and ``dcgan_d(pool, spectral_norm, embed_std)``) trained from scratch, seeded.

    ``score(generator) -> float`` (lower is better; the benchmark: FID against held-out training images) is
    evaluated after every epoch and the best epoch's generator and discriminator are returned, with the scores:
    the adversarial game oscillates from epoch to epoch, and the last epoch is not the best one.
    """
    from slimkit.data.loader import make_loader

    torch.manual_seed(seed)
    g = slimkit.create_model("dcgan_g", width=width, noise_dim=NOISE_DIM)
    d = slimkit.create_model("dcgan_d", width=width, pool=pool, spectral_norm=spectral_norm, embed_std=embed_std)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = make_loader(data, batch_size=batch_size, shuffle=True, seed=seed, drop_last=True)
    make = conditional_inputs(NOISE_DIM)
    rng = torch.Generator().manual_seed(seed)
    scores: list[float] = []
    best = (g, d)
    for epoch in range(epochs):
        g.train()
        loader.set_epoch(epoch)
        started, losses = time.perf_counter(), []
        for batch in loader:
            (z, y), real, cond = make(batch, rng)
            fake = g(z, y)
            loss_d = d_loss(d(real, *cond), d(fake.detach(), *cond))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            loss_g = g_loss(d(fake, *cond))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            losses.append((loss_g.item(), loss_d.item()))
        lg, ld = torch.tensor(losses).mean(0).tolist()
        scores.append(score(g.eval()) if score is not None else -float(epoch))
        if scores[-1] <= min(scores):
            best = (copy.deepcopy(g), copy.deepcopy(d))
        g.train()
        print(f"teacher epoch {epoch + 1}/{epochs}  loss_g {lg:.3f}  loss_d {ld:.3f}  held-out score "
              f"{scores[-1]:.2f}  {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return best[0].eval(), best[1], scores


def cached_teacher(path: Path, train):
    """``train()``'s (generator, discriminator, scores), stored as state dicts at ``path`` and loaded when there.

    Teacher training is seeded, so a rerun would rebuild the same teacher; the cache only saves its CPU time
    (read back with ``weights_only=True``: tensors, no pickled objects).
    """
    if path.exists():
        state = torch.load(path, weights_only=True)
        g, d = train(epochs=0)[:2]  # fresh models of the same shapes
        g.load_state_dict(state["generator"])
        d.load_state_dict(state["discriminator"])
        print(f"teacher loaded from {path}", file=sys.stderr)
        return g.eval(), d, state["scores"].tolist()
    g, d, scores = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": g.state_dict(), "discriminator": d.state_dict(),
                "scores": torch.tensor(scores, dtype=torch.float64)}, path)
    return g, d, scores


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _bit_list(text: str) -> tuple[int, ...]:
    """``"4,6"`` -> ``(4, 6)``: weight widths besides 8 for the extra GS / two_step pairs."""
    bits = tuple(int(v) for v in text.split(",") if v.strip())
    if any(not 2 <= b <= 7 for b in bits):
        raise argparse.ArgumentTypeError(f"weight widths must be in [2, 7] (8 is always run), got {text!r}")
    return bits


def ptq_rows(float_student: nn.Module, bits: int, calibration) -> list[tuple[str, nn.Module]]:
    """two_step at ``bits``-bit weights (8-bit activations): copies of the float student after post-training
    quantization, weight ranges by min/max (two_step's observer) and by the MSE observer (the stronger baseline
    at low widths, where clipping outliers pays)."""
    rows = []
    for suffix, observer in (("", "minmax"), ("_mse", "mse")):
        model = copy.deepcopy(float_student)
        quantize_generator(model, QuantConfig(weight_bits=bits, activation_bits=8, fold_bn=False,
                                              weight_observer=observer), calibration)
        rows.append((f"two_step{bits}{suffix}", model.eval()))
    return rows


def macs(model: nn.Module) -> int:
    x = (torch.randn(1, NOISE_DIM), torch.tensor([0]))
    with torch.no_grad():
        return build_graph(model.eval(), x).macs()


def thin_width(teacher_width: float, macs_limit: int) -> float:
    """The largest width (1/64 steps of the teacher's) whose dcgan_g has at most ``macs_limit`` MACs."""
    best = teacher_width / 64
    for k in range(1, 65):
        w = teacher_width * k / 64
        if macs(slimkit.create_model("dcgan_g", width=w, noise_dim=NOISE_DIM)) <= macs_limit:
            best = w
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10000 training images, width 0.5, few epochs")
    parser.add_argument("--smoke", action="store_true", help="256 images, tiny models, a few steps (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the teacher, the GS runs and the baselines")
    parser.add_argument("--lr-scale", type=float, default=LR_SCALE,
                        help=f"GS runs: SGD learning rate of the norm scales (GanSlimConfig.lr_scale; default "
                             f"{LR_SCALE}); 0: the scales stay in the generator's Adam")
    parser.add_argument("--strength", type=float, default=STRENGTH,
                        help=f"GS runs: the L1 weight rho (default {STRENGTH})")
    parser.add_argument("--d-pool", type=int, default=D_POOL,
                        help=f"teacher discriminator: dcgan_d(pool=N) (default {D_POOL}; 1 = global mean)")
    parser.add_argument("--d-sn", action=argparse.BooleanOptionalAction, default=D_SPECTRAL_NORM,
                        help=f"teacher discriminator: dcgan_d(spectral_norm=...) (default {D_SPECTRAL_NORM})")
    parser.add_argument("--d-embed-std", type=float, default=D_EMBED_STD,
                        help=f"teacher discriminator: dcgan_d(embed_std=...), the class embedding's init std "
                             f"(default {D_EMBED_STD})")
    parser.add_argument("--teacher-epochs", type=int, default=None, help="override the setting's teacher epochs")
    parser.add_argument("--tune", default="",
                        help="GS-8 grid 'LR_SCALE:STRENGTH,...' scored by FID against held-out training images "
                             "(the validation split, never the test set); the best pair is used for GS-32/GS-8")
    parser.add_argument("--gs8-from", choices=("slim", "teacher"), default=GS8_FROM,
                        help="GS-8's start: 'slim' (default): the slimmed float student that two_step quantizes, "
                             "then quantization-aware GS epochs distilled from it; 'teacher': one joint run from "
                             "a copy of the teacher")
    parser.add_argument("--gs8-qat-epochs", type=int, default=None,
                        help="--gs8-from slim: epochs of the quantization-aware phase (default: twice the GS "
                             "epochs; the best one on held-out FID is kept)")
    parser.add_argument("--gs8-qat-lr", type=float, default=GS8_QAT_LR,
                        help="--gs8-from slim: the generator's Adam learning rate in the quantization-aware phase "
                             "(GS-8, GS-B, slim+gs; default 5e-5, chosen on held-out FID: 2e-4, that of the GS "
                             "runs, moved the slim student away from its start)")
    parser.add_argument("--gs8-qat-gan-weight", type=float, default=0.1,
                        help="--gs8-from slim: the adversarial weight in the quantization-aware phase (default 0.1, "
                             "that of every GS run; 0: distillation from the float slim student only)")
    parser.add_argument("--extra-weight-bits", type=_bit_list, default=(),
                        help="comma list of weight widths (2..7) to compare as well, activations 8 bits: GS-B "
                             "(GS-8's run at B-bit weights) against two_stepB (B-bit PTQ of the same student)")
    parser.add_argument("--controls", action="store_true",
                        help="--gs8-from slim: two more rows, 'slim' (the float student two_step quantizes and GS-8 "
                             "continues) and 'slim+gs' (GS-8's phase without quantization): what PTQ costs, and "
                             "what the extra GS epochs do apart from quantization")
    parser.add_argument("--skip-gs32", action="store_true",
                        help="skip GS-32 and distill_only (their keys are null): GS-8 against two_step only")
    parser.add_argument("--keep-best", action=argparse.BooleanOptionalAction, default=True,
                        help="every gan_slim run (GS rows and baselines alike) keeps the epoch of its last phase "
                             "with the best FID against held-out training images (gan_slim's score_fn; the "
                             "validation split, never the test set), as the teacher's epoch is chosen (default on)")
    parser.add_argument("--no-teacher-cache", action="store_true",
                        help="retrain the teacher even when OUT_DIR holds one for these settings")
    parser.add_argument("--out-dir", default="runs/benchmarks/gan_slimming")
    args = parser.parse_args()
    if args.controls and args.gs8_from != "slim":
        parser.error("--controls needs --gs8-from slim")
    torch.set_num_threads(args.threads)
    q, smoke = args.quick, args.smoke
    started = time.perf_counter()
    subset = 256 if smoke else 10000 if q else None
    width = 0.125 if smoke else 0.5 if q else 1.0
    teacher_epochs, gs_epochs, ft_epochs = (1, 1, 0) if smoke else (TEACHER_EPOCHS_QUICK, 2, 1) if q else (20, 10, 3)
    qat_epochs = args.gs8_qat_epochs if args.gs8_qat_epochs is not None else GS8_QAT_EPOCHS_PER_GS_EPOCH * gs_epochs
    teacher_epochs = args.teacher_epochs if args.teacher_epochs is not None else teacher_epochs
    samples = 200 if smoke else 10000  # the issue: FID on >= 10,000 generated images

    data = slimkit.load_dataset("fashion_mnist", normalize=False, subset=subset, seed=0)
    cache = Path(args.out_dir) if smoke else fid.cache_dir()
    steps = 10 if smoke else None
    # FID features: a classifier trained once on the full training set (a small one on the subset in --smoke)
    classifier = fid.feature_classifier(data if smoke else None, epochs=1 if smoke else 2, seed=0,
                                        width=0.25 if smoke else 1.0, max_steps_per_epoch=steps,
                                        path=cache / "fid_classifier.pt" if smoke else None)
    # the distillation features come from another classifier (seed 1, half width, the benchmark's training
    # images): a student trained on the FID network's own features would be judged by what it was fitted to
    distill_net = fid.feature_classifier(data, epochs=1 if smoke else 2, seed=1, width=0.5,
                                         max_steps_per_epoch=steps,
                                         path=cache / f"fashion_mnist_distill_w0.5_e2_s1_n{subset or 'all'}.pt")
    real = fid.activations(classifier, fid.real_images(data.test, samples, seed=0)[0])  # the whole test set
    train_real = fid.activations(classifier, fid.real_images(data.train, samples, seed=0)[0])
    held_out = fid.activations(classifier, fid.real_images(data.val, samples, seed=0)[0])  # tuning reference
    half = len(real) // 2
    floors = {"real_fid": fid.frechet_distance(real, train_real),          # same sample count as the figures
              "real_fid_halves": fid.frechet_distance(real[:half], real[half:])}  # test set half vs half

    def quality(generator: nn.Module, reference=real, noise_seed: int = 1) -> tuple[float, float]:
        images, labels = fid.generate(generator, samples, seed=noise_seed)
        return (fid.frechet_distance(reference, fid.activations(classifier, images)),
                fid.class_accuracy(classifier, images, labels))

    def held_out_fid(generator: nn.Module) -> float:  # teacher epoch selection: never the test set
        images, _ = fid.generate(generator, min(samples, 5000), seed=3)
        return fid.frechet_distance(held_out, fid.activations(classifier, images))

    def train(epochs: int = teacher_epochs):
        return train_teacher(data.train, width, epochs, args.seed, pool=args.d_pool, spectral_norm=args.d_sn,
                             score=held_out_fid, embed_std=args.d_embed_std)

    teacher_file = Path(args.out_dir) / (f"teacher_n{subset or 'all'}_w{width}_e{teacher_epochs}_s{args.seed}"
                                         f"_pool{args.d_pool}_sn{int(args.d_sn)}"
                                         f"{'' if args.d_embed_std == 1.0 else f'_es{args.d_embed_std:g}'}.pt")
    teacher, disc, teacher_scores = (train() if smoke or args.no_teacher_cache
                                     else cached_teacher(teacher_file, train))
    teacher_epoch = teacher_scores.index(min(teacher_scores)) + 1
    teacher_fid, teacher_acc = quality(teacher)
    teacher_fid_noise2 = quality(teacher, noise_seed=2)[0]  # same teacher, other noise: the sampling noise
    teacher_bytes = stored_bytes(teacher)
    features = fid.classifier_features(distill_net)
    base = {"epochs": gs_epochs, "finetune_epochs": ft_epochs, "seed": args.seed, "distill_weight": 1.0,
            "gan_weight": 0.1, "batch_size": 64, "device": "cpu", "max_steps_per_epoch": steps,
            "progress": not smoke}
    gs = {"strength": args.strength, "lr_scale": args.lr_scale or None}

    best_epochs: dict[str, int | None] = {}  # run -> the kept epoch of its last phase (--keep-best)
    slim_disc: list[nn.Module] = []  # the discriminator trained along the "slim" run (GS-8 continues with it)

    def run(name: str, student: nn.Module, teacher: nn.Module = teacher, discriminator: nn.Module | None = None,
            **options) -> tuple[nn.Module, slimkit.GanSlimReport]:
        t0 = time.perf_counter()
        d = copy.deepcopy(disc) if discriminator is None else discriminator
        report = gan_slim(student, d, teacher, data.train, GanSlimConfig(**{**base, **options}),
                          feature_fn=features, score_fn=held_out_fid if args.keep_best else None,
                          checkpoint_dir=Path(args.out_dir) / f"{name}_s{args.seed}",
                          resume=False)
        best_epochs[name] = report.best_epoch
        if name == "slim":
            slim_disc.append(d)
        print(f"{name}: {time.perf_counter() - t0:.0f}s\n{report.table()}", file=sys.stderr)
        return student.eval(), report

    gs8_options = {"target_macs_reduction": 4.0, "target_params_reduction": 6.0, "weight_bits": 8,
                   "activation_bits": 8}
    tuning = []
    if args.tune:  # GS-8 per candidate, scored on held-out training images (never the test set)
        for pair in args.tune.split(","):
            lr_scale, strength = (float(v) for v in pair.split(":"))
            candidate = {"strength": strength, "lr_scale": lr_scale or None}
            student, _ = run(f"tune_{pair}", copy.deepcopy(teacher), **gs8_options, **candidate)
            score = quality(student, reference=held_out, noise_seed=3)[0]
            tuning.append({"lr_scale": lr_scale, "strength": strength, "held_out_fid": round(score, 3)})
            print(f"tune lr_scale {lr_scale} strength {strength}: held-out FID {score:.2f}", file=sys.stderr)
        best = min(tuning, key=lambda t: t["held_out_fid"])
        gs = {"strength": best["strength"], "lr_scale": best["lr_scale"] or None}

    if not args.skip_gs32:
        gs32, r32 = run("gs32", copy.deepcopy(teacher), target_macs_reduction=4.0, **gs)
    calibration = [(torch.randn(64, NOISE_DIM, generator=torch.Generator().manual_seed(i)), torch.arange(64) % 10)
                   for i in range(8)]
    if args.gs8_from == "slim":
        # one slimming run in float to GS-8's MACs and params targets; two_step quantizes it after training
        # (8-bit PTQ), GS-8 continues it with the quantizers inside the GS objective, distilled from that float
        # student (what quantization must preserve), so the two have the same channels by construction
        slim, r_slim = run("slim", copy.deepcopy(teacher), target_macs_reduction=4.0, target_params_reduction=6.0,
                           **gs)
        two, r2 = copy.deepcopy(slim), r_slim
        # the quantization-aware phase: from the slim student, distilled from it, against a copy of its
        # discriminator, no penalty (every row of this phase differs from the others only in the bit widths)
        phase = {"strength": 0.0, "lr_scale": None, "lr_g": args.gs8_qat_lr, "finetune_epochs": 0,
                 "gan_weight": args.gs8_qat_gan_weight,
                 "epochs": qat_epochs}

        def continue_slim(name: str, **bits) -> tuple[nn.Module, slimkit.GanSlimReport]:
            return run(name, copy.deepcopy(slim), teacher=copy.deepcopy(slim),
                       discriminator=copy.deepcopy(slim_disc[0]), **phase, **bits)

        gs8, r8 = continue_slim("gs8", weight_bits=8, activation_bits=8)
        params_target = r_slim.params_before / r_slim.params_after
        low = {b: continue_slim(f"gs{b}", weight_bits=b, activation_bits=8)[0] for b in args.extra_weight_bits}
        if args.controls:  # GS-8's phase in float: the effect of the extra epochs, quantization aside
            control = continue_slim("slim_gs")[0]
            controls = [("slim", slim), ("slim+gs", control)]
    else:
        gs8, r8 = run("gs8", copy.deepcopy(teacher), **gs8_options, **gs)
        # two_step: the same slimming (options, penalty, removal) in float to GS-8's parameter count, then PTQ
        params_target = r8.params_before / r8.params_after
        two, r2 = run("two_step", copy.deepcopy(teacher), target_macs_reduction=4.0,
                      target_params_reduction=params_target, **gs)
        low = {b: run(f"gs{b}", copy.deepcopy(teacher), **{**gs8_options, "weight_bits": b}, **gs)[0]
               for b in args.extra_weight_bits}
    thin = None if args.skip_gs32 else thin_width(width, r32.macs_after)
    if not args.skip_gs32:
        torch.manual_seed(args.seed)
        distill_student = slimkit.create_model("dcgan_g", width=thin, noise_dim=NOISE_DIM)
        distill, rd = run("distill_only", distill_student, strength=0.0, gan_weight=0.0,
                          epochs=gs_epochs + ft_epochs, finetune_epochs=0)
    extra_rows = (controls if args.controls else []) + [row for b in args.extra_weight_bits
                  for row in [(f"GS-{b}", low[b]), *ptq_rows(two, b, calibration)]]
    quantize_generator(two, QuantConfig(weight_bits=8, activation_bits=8, fold_bn=False), calibration)

    rows = [("teacher", teacher, teacher_bytes), ("GS-8", gs8, stored_bytes(gs8)),
            ("two_step", two, stored_bytes(two))]
    if not args.skip_gs32:
        rows[1:1] = [("GS-32", gs32, stored_bytes(gs32))]
        rows[3:3] = [("distill_only", distill, stored_bytes(distill))]
    rows += [(name, model, stored_bytes(model)) for name, model in extra_rows]
    results, held_out_figures = {}, {}
    if args.skip_gs32:
        results = {"GS-32": (None,) * 4, "distill_only": (None,) * 4}
    print(f"{'model':<13} {'MACs':>12} {'MACs red.':>9} {'params':>9} {'bytes':>10} {'size red.':>9} "
          f"{'FID':>8} {'class acc':>9}")
    teacher_macs = macs(teacher)
    for name, model, size in rows:
        f, acc = (teacher_fid, teacher_acc) if name == "teacher" else quality(model)
        m = macs(model)
        params = sum(p.numel() for n, p in model.named_parameters() if "_quant." not in n)
        results[name] = (f, acc, teacher_macs / m, teacher_bytes / size)
        held_out_figures[name] = quality(model, reference=held_out, noise_seed=3)[0]  # validation, not test
        print(f"{name:<13} {m:>12,} {teacher_macs / m:>8.2f}x {params:>9,} {size:>10,} "
              f"{teacher_bytes / size:>8.1f}x {f:>8.2f} {acc:>9.4f}")
    print(f"FID floor: real training vs test images {floors['real_fid']:.2f}, test half vs half "
          f"{floors['real_fid_halves']:.2f}; teacher FID with other noise {teacher_fid_noise2:.2f}")
    print(f"distill_only width {thin} (teacher {width}); two_step params target "
          f"{params_target:.2f}x; {time.perf_counter() - started:.0f}s in all")
    print(json.dumps({
        "benchmark": "gan_slimming", "quick": q, "smoke": smoke, "seed": args.seed, "train_subset": subset,
        "teacher_width": width, "d_pool": args.d_pool, "d_spectral_norm": args.d_sn, "d_embed_std": args.d_embed_std, "epochs": [teacher_epochs, gs_epochs, ft_epochs],
        "teacher_epoch": teacher_epoch, "teacher_held_out_fid": [round(v, 1) for v in teacher_scores],
        "strength": gs["strength"], "lr_scale": gs["lr_scale"], "gs8_from": args.gs8_from, "gs8_qat_lr": args.gs8_qat_lr, "gs8_qat_epochs": qat_epochs, "gs8_qat_gan_weight": args.gs8_qat_gan_weight, "tuning": tuning, "fid_samples": samples,
        **{k: round(v, 3) for k, v in floors.items()},
        "teacher_fid": round(teacher_fid, 3), "teacher_fid_noise2": round(teacher_fid_noise2, 3),
        "gs32_fid": _round(results["GS-32"][0], 3),
        "gs32_macs_reduction": _round(results["GS-32"][2], 3), "gs32_size_ratio": _round(results["GS-32"][3], 3),
        "gs8_fid": round(results["GS-8"][0], 3), "gs8_size_ratio": round(results["GS-8"][3], 3),
        "gs8_macs_reduction": round(results["GS-8"][2], 3),
        "distill_only_fid": _round(results["distill_only"][0], 3), "two_step_fid": round(results["two_step"][0], 3),
        "two_step_size_ratio": round(results["two_step"][3], 3),
        "class_accuracy_teacher": round(teacher_acc, 4), "class_accuracy_gs8": round(results["GS-8"][1], 4),
        "class_accuracy_gs32": _round(results["GS-32"][1], 4),
        "class_accuracy_distill_only": _round(results["distill_only"][1], 4),
        "class_accuracy_two_step": round(results["two_step"][1], 4),
        "extra_weight_bits": list(args.extra_weight_bits),
        **({f"{key}_{what}": round(results[name][i], digits) for key, name in (("slim", "slim"),
                                                                                ("slim_gs", "slim+gs"))
            for what, i, digits in (("fid", 0, 3), ("size_ratio", 3, 3), ("class_accuracy", 1, 4))}
           if args.controls else {}),
        **{f"{key}{b}{suffix}_{what}": round(results[f"{name}{b}{suffix}"][i], digits)
           for b in args.extra_weight_bits for key, name, suffix in
           (("gs", "GS-", ""), ("two_step", "two_step", ""), ("two_step", "two_step", "_mse"))
           for what, i, digits in (("fid", 0, 3), ("size_ratio", 3, 3), ("macs_reduction", 2, 3),
                                   ("class_accuracy", 1, 4))},
        "held_out_fid": {k: round(v, 3) for k, v in held_out_figures.items()},
        "keep_best": args.keep_best, "best_epochs": best_epochs,
        "seconds": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    main()
