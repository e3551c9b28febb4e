#!/usr/bin/python3
"""PyTorch reference benchmark for silentgrad (benchmark only; never a runtime/CI dependency).

Times one training step of the paper's fixed-variance VAE (Table 2 setting):
  encoder  = Table 5: conv3x3(1->32) ReLU conv3x3(32->32) ReLU conv3x3(32->32) flatten Linear
             (stride 1, padding 1; Linear 25088 -> 2d for Gaussian (mean, log-var), -> d logits for Bernoulli)
  decoder  = Linear(d -> 784) with bias, d = 200, batch 64 of 1x28x28 images
  loss     = -(closed-form expected reconstruction log-likelihood, the "silent ELBO") + KL, batch mean
             E[(x_j - U_j)^2] = (x_j - Ubar_j)^2 + sum_i W_ji^2 c2_i,   Ubar = W m + b
             log p = -E[..]/(2 sigma^2) - (k/2) log(2 pi sigma^2),  sigma^2 = 0.01, k = 784
  optimizer= AdamW(lr=1e-4, betas=(0.9, 0.95)), torch-default weight_decay=0.01

Two variants of every dense (matmul-shaped) operation:
  (a) "linear": stock F.linear / torch.mm -> on Debian's python3-torch this is the generic
      reference BLAS (BLAS_INFO=generic, /usr/lib/x86_64-linux-gnu/blas/libblas.so.3).
  (b) "conv1x1": the same contraction written as a 1x1 convolution over a (B, in, 1, 1) view,
      dispatched to oneDNN (MKL-DNN); the script asserts the conv backend and checks that loss
      and all gradients agree with (a) to float32 tolerance.
Convolutions of the encoder go through oneDNN in both variants.

Usage:  /usr/bin/python3 bench/pytorch/train_step.py [--json out.json] [--steps 30] [--warmup 5]
"""
import argparse
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("torch not importable: install Debian's python3-torch (apt-get install python3-torch) "
             "and run with /usr/bin/python3 (a pyenv/venv python3 will not see it)")

D_LATENT = 200
BATCH = 64
H = W_IMG = 28
K_PIX = H * W_IMG
CH = 32
SIGMA2 = 0.01
LR = 1e-4
BETAS = (0.9, 0.95)
THREADS = 2


# --------------------------------------------------------------------------- dense ops
def dense_linear(x, w, b=None):
    """Reference-BLAS path: y = x w^T + b via F.linear."""
    return F.linear(x, w, b)


def dense_conv1x1(x, w, b=None):
    """oneDNN path: identical contraction as a 1x1 conv on a (B, in, 1, 1) view.
    w is (out, in) (nn.Linear layout), which already is the conv (out, in, 1, 1) layout."""
    y = F.conv2d(x.reshape(x.shape[0], x.shape[1], 1, 1), w.reshape(w.shape[0], w.shape[1], 1, 1), b)
    return y.reshape(x.shape[0], w.shape[0])


DENSE = {"linear": dense_linear, "conv1x1": dense_conv1x1}
PATH = {"linear": "reference BLAS (F.linear/torch.mm, BLAS_INFO=generic)",
        "conv1x1": "oneDNN (1x1 F.conv2d)"}


def conv_backend(x_shape, w_shape, padding):
    """Which ATen conv backend a float32 CPU conv of these shapes dispatches to."""
    sel = getattr(torch._C, "_select_conv_backend", None)
    if sel is None:
        return "unknown"
    x = torch.empty(x_shape)
    w = torch.empty(w_shape)
    return str(sel(x, w, None, [1, 1], list(padding), [1, 1], False, [0, 0], 1)).split(".")[-1]


# --------------------------------------------------------------------------- model
class FixedVarVAE(nn.Module):
    def __init__(self, latent):
        super().__init__()
        self.latent = latent
        self.c1 = nn.Conv2d(1, CH, 3, 1, 1)
        self.c2 = nn.Conv2d(CH, CH, 3, 1, 1)
        self.c3 = nn.Conv2d(CH, CH, 3, 1, 1)
        n_out = 2 * D_LATENT if latent == "gaussian" else D_LATENT
        self.enc = nn.Linear(CH * H * W_IMG, n_out)   # weights stored (out, in)
        self.dec = nn.Linear(D_LATENT, K_PIX)

    def loss(self, x, dense):
        """x: (B, 1, 28, 28) in [0, 1). Returns batch-mean (-E_q[log p(x|z)] + KL)."""
        h = F.relu(self.c1(x))
        h = F.relu(self.c2(h))
        h = self.c3(h).flatten(1)                      # (B, 25088), C-major like nn.Flatten
        e = dense(h, self.enc.weight, self.enc.bias)
        if self.latent == "gaussian":
            mu, logvar = e[:, :D_LATENT], e[:, D_LATENT:]
            m = mu
            c2 = torch.exp(logvar)
            kl = 0.5 * (mu * mu + c2 - 1.0 - logvar).sum(1)
        else:
            logit = e
            p = torch.sigmoid(logit)
            m = p
            c2 = p * (1.0 - p)
            logp, log1mp = F.logsigmoid(logit), F.logsigmoid(-logit)
            kl = (p * (math.log(2.0) + logp) + (1.0 - p) * (math.log(2.0) + log1mp)).sum(1)
        Wd, bd = self.dec.weight, self.dec.bias        # (784, d), (784,)
        ubar = dense(m, Wd, bd)                        # E[U] = W m + b
        var_u = dense(c2, Wd * Wd)                     # sum_i W_ji^2 c2_i
        xf = x.flatten(1)
        sq = (xf - ubar) ** 2 + var_u                  # E[(x - U)^2]
        rec = -sq.sum(1) / (2 * SIGMA2) - 0.5 * K_PIX * math.log(2 * math.pi * SIGMA2)
        return (kl - rec).mean()


def make_batch(gen):
    x_int = torch.randint(0, 256, (BATCH, 1, H, W_IMG), generator=gen).float()
    # paper's scaling x = x_int/256, dequantised y = x + U[0, 1/256)
    return x_int / 256.0 + torch.rand(BATCH, 1, H, W_IMG, generator=gen) / 256.0


# --------------------------------------------------------------------------- timing helpers
def _stat_jiffies():
    with open("/proc/stat") as f:
        v = [int(t) for t in f.readline().split()[1:]]
    return sum(v), sum(v) - v[3] - v[4]


class OthersMeter:
    """Share of total CPU capacity used by *other* processes while timing (0 = machine was ours)."""
    def __enter__(self):
        try:
            self.j0 = _stat_jiffies()
        except OSError:
            self.j0 = None
        self.p0 = time.process_time()
        return self

    def __exit__(self, *exc):
        self.value = None
        if self.j0 is None:
            return False
        j1 = _stat_jiffies()
        tot = max(j1[0] - self.j0[0], 1)
        ours = (time.process_time() - self.p0) * os.sysconf("SC_CLK_TCK")
        self.value = max(0.0, (j1[1] - self.j0[1] - ours) / tot)
        return False


def median_ms(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    ts = []
    with OthersMeter() as om:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
    median_ms.others = om.value
    return statistics.median(ts), min(ts), ts


def auto_reps(fn, target_s=0.4, lo=5, hi=200):
    t0 = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - t0, 1e-6)
    return int(min(hi, max(lo, target_s / dt)))


# --------------------------------------------------------------------------- equivalence check
def check_equivalence(latent, seed):
    torch.manual_seed(seed)
    ma = FixedVarVAE(latent)
    mb = FixedVarVAE(latent)
    mb.load_state_dict(ma.state_dict())
    x = make_batch(torch.Generator().manual_seed(seed + 1))
    la = ma.loss(x, dense_linear)
    la.backward()
    lb = mb.loss(x, dense_conv1x1)
    lb.backward()
    worst = abs(la.item() - lb.item()) / max(abs(la.item()), 1e-12)
    rows = {"loss_rel": worst}
    ok = worst < 1e-4
    for (n, pa), (_, pb) in zip(ma.named_parameters(), mb.named_parameters()):
        err = (pa.grad - pb.grad).abs().max().item()
        scale = pa.grad.abs().max().item()
        rel = err / max(scale, 1e-30)
        rows["grad_rel_" + n] = rel
        ok = ok and rel < 1e-3
    return ok, la.item(), lb.item(), rows


# --------------------------------------------------------------------------- train-step timing
def make_train_step(latent, variant, seed):
    """A fresh model and optimiser; returns one full training step (fwd + bwd + AdamW)."""
    torch.manual_seed(seed)
    model = FixedVarVAE(latent)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS)
    dense = DENSE[variant]
    gen = torch.Generator().manual_seed(seed + 1)
    batches = [make_batch(gen) for _ in range(4)]
    it = [0]

    def step():
        x = batches[it[0] % len(batches)]
        it[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = model.loss(x, dense)
        loss.backward()
        opt.step()
        return loss

    return step


def time_train_step(latent, variant, warmup, steps, seed):
    step = make_train_step(latent, variant, seed)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    med, mn, ts = median_ms(step, warmup, steps)
    f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    last = step().item()
    return {"latent": latent, "variant": variant, "dense_path": PATH[variant],
            "conv_path": "oneDNN", "median_ms": med, "min_ms": mn,
            "all_ms": [round(t, 3) for t in ts], "final_loss": last, "steps": steps, "warmup": warmup,
            "others_cpu": median_ms.others, "page_faults_per_step": (f1 - f0) / (warmup + steps)}


# --------------------------------------------------------------------------- kernels
def time_matmul(m, k, n, variant):
    a = torch.randn(m, k)
    if variant == "linear":
        b = torch.randn(k, n)
        fn = lambda: torch.mm(a, b)
    else:
        wt = torch.randn(n, k).reshape(n, k, 1, 1)     # B^T in conv layout, prepared once
        a4 = a.reshape(m, k, 1, 1)
        fn = lambda: F.conv2d(a4, wt)
    # cross-check numerics once
    if variant == "conv1x1":
        ref = torch.mm(a, wt.reshape(n, k).t())
        got = F.conv2d(a4, wt).reshape(m, n)
        assert torch.allclose(ref, got, rtol=1e-4, atol=1e-3 * math.sqrt(k)), "1x1 conv != mm"
    with torch.no_grad():
        reps = auto_reps(fn)
        med, mn, _ = median_ms(fn, 3, reps)
    flops = 2.0 * m * k * n
    return {"kind": "matmul", "shape": f"{m}x{k}x{n}", "M": m, "K": k, "N": n, "variant": variant,
            "path": PATH[variant].replace("F.linear/", ""), "median_ms": med, "min_ms": mn,
            "gflops": flops / (med * 1e-3) / 1e9, "reps": reps,
            "others_cpu": median_ms.others}


def time_conv(cin, cout, input_grad):
    x = torch.randn(BATCH, cin, H, W_IMG, requires_grad=input_grad)
    w = torch.randn(cout, cin, 3, 3, requires_grad=True)
    b = torch.randn(cout, requires_grad=True)
    g = torch.randn(BATCH, cout, H, W_IMG)

    def fn():
        y = F.conv2d(x, w, b, 1, 1)
        y.backward(g)
        w.grad = None
        b.grad = None
        x.grad = None

    reps = auto_reps(fn)
    med, mn, _ = median_ms(fn, 3, reps)
    fwd = 2.0 * BATCH * cout * H * W_IMG * cin * 9
    flops = fwd * (3 if input_grad else 2)            # fwd + weight-grad (+ input-grad)
    return {"kind": "conv2d_fwd_bwd", "shape": f"B{BATCH} {cin}->{cout} 28x28 k3 p1",
            "input_grad": input_grad, "path": "oneDNN (" + conv_backend((BATCH, cin, H, W_IMG), (cout, cin, 3, 3), (1, 1)) + ")",
            "median_ms": med, "min_ms": mn, "gflops": flops / (med * 1e-3) / 1e9, "reps": reps,
            "others_cpu": median_ms.others}


def fmt_pct(v):
    return "?" if v is None else f"{100 * v:.0f}%"


def cpu_busy_fraction(seconds=1.0):
    """Fraction of all CPUs busy (non-idle, non-iowait) over `seconds`, from /proc/stat; None if unavailable."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
        return 1.0 - (i1 - i0) / max(t1 - t0, 1)
    except (OSError, IndexError, ValueError):
        return None


def cleanest(fn, retries, max_wait_s=60.0):
    """Run measurement fn() up to `retries` times while other processes disturb it (others_cpu > 5%),
    waiting for an idle machine before each retry; keep the least-disturbed result."""
    best = None
    for attempt in range(max(1, retries)):
        if attempt:
            t_end = time.time() + max_wait_s
            while time.time() < t_end and (cpu_busy_fraction(1.0) or 0) > 0.05:
                pass
        r = fn()
        r["attempts"] = attempt + 1
        if best is None or (r["others_cpu"] or 0) < (best["others_cpu"] or 0):
            best = r
        if (best["others_cpu"] or 0) <= 0.05:
            break
    return best


# --------------------------------------------------------------------------- main
ALLOCATORS = {
    # glibc as shipped: big tensors (>= 128 KiB..32 MiB, dynamic threshold) are mmap'd and munmap'd on
    # every allocation, so each step re-faults tens of thousands of fresh pages (very costly in a VM).
    "glibc-default": {},
    # same glibc, told to keep freed memory: no mmap for large blocks, never trim the heap.
    "glibc-reuse": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"},
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", metavar="PATH", help="write results as JSON to PATH")
    ap.add_argument("--steps", type=int, default=30, help="timed train steps per config (median reported)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed warm-up steps per config")
    ap.add_argument("--linear-steps", type=int, default=10,
                    help="timed steps for the (slow, ~1 s/step) reference-BLAS variant (2 warm-up)")
    ap.add_argument("--retries", type=int, default=3,
                    help="re-time a row up to this many times if other processes used >5%% of the CPUs")
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-linear-steps", action="store_true",
                    help="skip the slow reference-BLAS train-step timings")
    ap.add_argument("--allocators", default="glibc-reuse,glibc-default",
                    help="comma list of allocator settings to run, each in its own process: "
                         + ", ".join(ALLOCATORS) + " (default: both)")
    ap.add_argument("--serve", action="store_true",
                    help="for bench/train-step.js --pytorch: read lines 'gaussian|bernoulli STEPS' on stdin and "
                         "answer each with one JSON line (median ms of STEPS oneDNN train steps), under the "
                         "glibc-reuse allocator, so that both engines are timed in alternation")
    ap.add_argument("--worker", metavar="NAME", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def worker_env(name):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    env.update(ALLOCATORS[name])
    return env


def serve(args):
    """One model per latent type, kept across requests (warm, as in training)."""
    torch.set_num_threads(args.threads)
    steps = {}
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] not in ("gaussian", "bernoulli") or len(words) != 2 or not words[1].isdigit():
            print(json.dumps({"error": f"expected 'gaussian|bernoulli STEPS', got {line.strip()!r}"}), flush=True)
            continue
        latent, n = words[0], int(words[1])
        if latent not in steps:
            steps[latent] = make_train_step(latent, "conv1x1", args.seed)
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        med, mn, _ = median_ms(steps[latent], 2, n)
        f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        print(json.dumps({"latent": latent, "median_ms": med, "min_ms": mn, "others_cpu": median_ms.others,
                          "page_faults_per_step": (f1 - f0) / (n + 2)}), flush=True)
    return 0


def main():
    args = parse_args()
    if args.worker:
        return serve(args) if args.serve else worker_main(args)
    if args.serve:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "glibc-reuse", "--serve",
               "--threads", str(args.threads), "--seed", str(args.seed)]
        return subprocess.run(cmd, env=worker_env("glibc-reuse")).returncode
    names = [a.strip() for a in args.allocators.split(",") if a.strip()]
    for n in names:
        if n not in ALLOCATORS:
            sys.exit(f"unknown allocator setting {n!r}; choose from {', '.join(ALLOCATORS)}")
    runs, rc = {}, 0
    with tempfile.TemporaryDirectory() as td:
        for n in names:
            env = worker_env(n)
            out = os.path.join(td, n + ".json")
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", n, "--json", out,
                   "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--linear-steps", str(args.linear_steps), "--retries", str(args.retries), "--threads", str(args.threads),
                   "--seed", str(args.seed)] + (["--skip-linear-steps"] if args.skip_linear_steps else [])
            print(f"\n######## allocator {n}: {' '.join(f'{k}={v}' for k, v in ALLOCATORS[n].items()) or '(glibc defaults)'}",
                  flush=True)
            r = subprocess.run(cmd, env=env)
            rc = rc or r.returncode
            if os.path.exists(out):
                with open(out) as f:
                    runs[n] = json.load(f)
    if not runs:
        return 1
    # combined summary
    print("\n================ SUMMARY (median ms per full train step: fwd + bwd + AdamW) ================")
    print(f"torch {next(iter(runs.values()))['info']['torch_version']}, threads {args.threads}, "
          f"batch {BATCH}, d={D_LATENT}; encoder 3x3 convs on oneDNN in every row")
    print(f"{'latent':10s} {'dense layers':38s} {'allocator':14s} {'median ms':>10s} {'min ms':>8s} {'others':>7s}")
    for latent in ("gaussian", "bernoulli"):
        for variant in ("conv1x1", "linear"):
            for n, run in runs.items():
                for r in run["train_step"]:
                    if r["latent"] == latent and r["variant"] == variant:
                        path = "oneDNN 1x1 conv" if variant == "conv1x1" else "F.linear -> reference BLAS"
                        print(f"{latent:10s} {path:38s} {n:14s} {r['median_ms']:10.1f} {r['min_ms']:8.1f} "
                              f"{fmt_pct(r['others_cpu']):>7s}")
    print("'others' = CPU share used by other processes while timing; rows above ~5% are unreliable.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"allocators": {n: ALLOCATORS[n] for n in runs}, "runs": runs}, f, indent=2)
        print(f"wrote {args.json}")
    return rc


def worker_main(args):
    torch.set_num_threads(args.threads)
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), cpu)
    except OSError:
        pass
    info = {
        "torch_version": torch.__version__,
        "torch_file": torch.__file__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu, "nproc": os.cpu_count(),
        "allocator": args.worker,
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"},
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "blas_info": "BLAS_INFO=" + (re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show()) or [None, "?"])[1],
        "loadavg_start": os.getloadavg(),
        "cpu_busy_before": cpu_busy_fraction(),
        "config": {"d": D_LATENT, "batch": BATCH, "channels": CH, "sigma2": SIGMA2, "lr": LR,
                   "betas": list(BETAS), "weight_decay": 0.01, "k": K_PIX},
    }
    # confirm dispatch of the conv1x1 dense ops and the encoder convs
    dispatch = {
        "enc_dense_1x1": conv_backend((BATCH, CH * H * W_IMG, 1, 1), (2 * D_LATENT, CH * H * W_IMG, 1, 1), (0, 0)),
        "dec_dense_1x1": conv_backend((BATCH, D_LATENT, 1, 1), (K_PIX, D_LATENT, 1, 1), (0, 0)),
        "conv_1to32": conv_backend((BATCH, 1, H, W_IMG), (CH, 1, 3, 3), (1, 1)),
        "conv_32to32": conv_backend((BATCH, CH, H, W_IMG), (CH, CH, 3, 3), (1, 1)),
    }
    info["conv_dispatch"] = dispatch
    print(f"torch {info['torch_version']} ({info['torch_file']}), python {info['python']}")
    print(f"threads={info['threads']} (nproc {info['nproc']}), cpu: {cpu}, allocator: {args.worker} {info['malloc_env']}")
    print(f"{info['blas_info']}, mkldnn available={info['mkldnn_available']}, conv dispatch: {dispatch}")
    busy = info["cpu_busy_before"]
    print(f"load average (1 min) {info['loadavg_start'][0]:.2f}; CPUs busy before start: "
          f"{'?' if busy is None else f'{100 * busy:.0f}%'}")
    if busy is not None and busy > 0.10:
        print("WARNING: other processes are using the CPUs; with 2 cores, oneDNN/OpenMP timings degrade badly "
              "under contention (several-fold). Re-run on an idle machine for numbers worth comparing.")
    if any(v != "Mkldnn" for v in dispatch.values()):
        print("WARNING: some conv did not dispatch to oneDNN (Mkldnn); 'oneDNN' labels below may be wrong")

    # 1. equivalence of the two dense formulations
    equiv = {}
    all_ok = True
    for latent in ("gaussian", "bernoulli"):
        ok, la, lb, rows = check_equivalence(latent, args.seed)
        equiv[latent] = {"ok": ok, "loss_linear": la, "loss_conv1x1": lb,
                         "max_rel_err": max(rows.values()), "details": rows}
        all_ok = all_ok and ok
        print(f"equivalence {latent:9s}: loss linear={la:.6f} conv1x1={lb:.6f} "
              f"max rel err (loss+grads)={max(rows.values()):.2e} -> {'OK' if ok else 'MISMATCH'}")
    if not all_ok:
        print("ERROR: conv1x1 variant does not match F.linear variant", file=sys.stderr)

    # 2. train steps
    steps = []
    for latent in ("gaussian", "bernoulli"):
        for variant in ("conv1x1", "linear"):
            if variant == "linear" and args.skip_linear_steps:
                continue
            w, n = (args.warmup, args.steps) if variant == "conv1x1" else (min(args.warmup, 2), args.linear_steps)
            r = cleanest(lambda: time_train_step(latent, variant, w, n, args.seed), args.retries)
            steps.append(r)
            print(f"  step {latent:9s} {variant:8s}: median {r['median_ms']:8.1f} ms  (min {r['min_ms']:.1f}, "
                  f"others' CPU {fmt_pct(r['others_cpu'])}, {r['page_faults_per_step']:.0f} page faults/step)",
                  flush=True)

    # 3. kernels
    kernels = []
    for (m, k, n) in ((64, 784, 200), (64, 200, 784), (512, 512, 512)):
        for variant in ("linear", "conv1x1"):
            kernels.append(cleanest(lambda: time_matmul(m, k, n, variant), args.retries))
    kernels.append(cleanest(lambda: time_conv(1, CH, input_grad=False), args.retries))
    kernels.append(cleanest(lambda: time_conv(CH, CH, input_grad=True), args.retries))

    # table
    print()
    print(f"== Train step (fwd+bwd+AdamW), batch {BATCH}, d={D_LATENT}, {info['threads']} threads, median of "
          f"{args.steps} (oneDNN) / {args.linear_steps} (reference BLAS) timed steps after warm-up ==")
    print(f"{'latent':10s} {'dense path':52s} {'median ms':>10s} {'min ms':>8s} {'others':>7s}")
    for r in steps:
        print(f"{r['latent']:10s} {r['dense_path']:52s} {r['median_ms']:10.1f} {r['min_ms']:8.1f} "
              f"{fmt_pct(r['others_cpu']):>7s}")
    print("(encoder 3x3 convs use oneDNN in both rows)")
    print()
    print("== Kernels (matmul: forward only, MxKxN, FLOP=2MKN; conv: fwd+bwd, FLOP counts weight-grad"
          " and, if input_grad, input-grad) ==")
    print(f"{'kernel':34s} {'path':46s} {'median ms':>10s} {'GFLOP/s':>9s} {'others':>7s}")
    for r in kernels:
        name = (f"mm {r['shape']}" if r["kind"] == "matmul"
                else f"conv {r['shape']}{' +dX' if r['input_grad'] else ''}")
        print(f"{name:34s} {r['path']:46s} {r['median_ms']:10.3f} {r['gflops']:9.2f} {fmt_pct(r['others_cpu']):>7s}")
    print("'others' = share of the machine's CPU used by other processes during the timed reps;"
          " anything above a few % makes that row unreliable")
    dirty = [r for r in steps + kernels if (r["others_cpu"] or 0) > 0.05]
    if dirty:
        print(f"WARNING: {len(dirty)} row(s) were timed while other processes used >5% of the CPUs")

    info["loadavg_end"] = os.getloadavg()
    print(f"\nload average at end: {info['loadavg_end'][0]:.2f} (1 min)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "equivalence": equiv, "train_step": steps, "kernels": kernels}, f, indent=2)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
