#!/usr/bin/python3
"""PyTorch's composite of the learnable-variance silent ELBO (benchmark only; never a runtime/CI dependency).

The same maths as silentgrad's composite (models/composite-elbo.ts, docs/silent-elbo.md section 3),
written as ordinary torch ops and differentiated by autograd, float32:
  p = sigmoid(logits), c2 = p sigmoid(-logits), c3 = c2 (1 - 2p), k4 = c2 (1 - 6 c2)   (Bernoulli)
  ten contractions  S = moment @ power(W)^T   (Ubar, Abar, Suu, Saa, Sua, Tuaa, Tuua, Taaa, Kuuaa, Kaaaa)
  per pixel         1/2 (log E[A^2] - Var[A^2] / (2 E[A^2]^2)) - 1/2 E[D^2 A^2],  summed, - k/2 log(2 pi)
  loss              -sum over the batch; one call = forward + backward.

The contractions go through oneDNN as 1x1 convolutions by default (Debian's torch.mm is the netlib
reference BLAS, a few GFLOP/s; see train_step.py); --dense linear gives torch.mm instead.

Only a --serve mode, for `node bench/silent-elbo.js --pytorch`: one JSON line per request on stdout.
  load {json}        the inputs as base64 float32 (logits [B,d], wMu, wA [k,d], bMu, bA [k], x [B,k]);
                     answers the loss and every leaf's gradient (moments from logits), for the
                     agreement check, and keeps the inputs for timing
  alone|logits N     median ms of N calls (after 2 warm-up calls): moments as leaves, or computed
                     from the logits inside the timed call
"""
import argparse
import base64
import json
import math
import os
import resource
import subprocess
import sys

# train_step.py's helpers: the dense paths, the allocator settings, and median_ms (which records
# other processes' CPU share while it times).
from train_step import DENSE, PATH, median_ms, worker_env
import torch

LOG_2PI = math.log(2 * math.pi)
NAMES = ("logits", "wMu", "bMu", "wA", "bA", "x")


def bernoulli_moments(logits):
    p = torch.sigmoid(logits)
    c2 = p * torch.sigmoid(-logits)
    return p, c2, c2 * (1 - 2 * p), c2 * (1 - 6 * c2)


def expected_log_likelihood(moments, u, b_mu, a, b_a, x, dense):
    """Per batch row; the term order of compositeExpectedLogLikelihoodLearnable."""
    mean, c2, c3, k4 = moments
    uu, aa, ua = u * u, a * a, u * a
    D = x - (dense(mean, u) + b_mu)
    A = dense(mean, a) + b_a
    Suu, Saa, Sua = dense(c2, uu), dense(c2, aa), dense(c2, ua)
    Tuaa, Tuua, Taaa = dense(c3, u * aa), dense(c3, uu * a), dense(c3, aa * a)
    Kuuaa, Kaaaa = dense(k4, uu * aa), dense(k4, aa * aa)
    D2, A2 = D * D, A * A
    eDA = (D2 * A2 + D2 * Saa + A2 * Suu + (D * A * Sua) * -4 + (D * Tuaa) * -2 + (A * Tuua) * 2
           + Kuuaa + Suu * Saa + (Sua * Sua) * 2)
    eA2 = A2 + Saa
    varA2 = (A2 * Saa) * 4 + (A * Taaa) * 4 + Kaaaa + (Saa * Saa) * 2
    log_term = torch.log(eA2) - varA2 / ((eA2 * eA2) * 2)
    return (log_term * 0.5 - eDA * 0.5).sum(1) - 0.5 * x.shape[1] * LOG_2PI


def decode(entry):
    raw = bytearray(base64.b64decode(entry["data"]))
    return torch.frombuffer(raw, dtype=torch.float32).reshape(entry["shape"]).clone()


def encode(t):
    return base64.b64encode(t.detach().contiguous().numpy().tobytes()).decode("ascii")


class Problem:
    """The inputs Node sent, as leaves, and one forward + backward per call."""
    def __init__(self, tensors, dense):
        self.t = {n: tensors[n] for n in NAMES}
        for n in NAMES[:-1]:
            self.t[n].requires_grad_(True)
        self.dense = dense
        with torch.no_grad():
            self.fixed = [m.clone().requires_grad_(True) for m in bernoulli_moments(self.t["logits"])]

    def call(self, from_logits):
        t = self.t
        moments = bernoulli_moments(t["logits"]) if from_logits else self.fixed
        loss = -expected_log_likelihood(moments, t["wMu"], t["bMu"], t["wA"], t["bA"], t["x"], self.dense).sum()
        loss.backward()
        value = loss.item()
        for leaf in list(t.values())[:-1] + self.fixed:
            leaf.grad = None
        return value

    def value_and_grads(self):
        t = self.t
        loss = -expected_log_likelihood(bernoulli_moments(t["logits"]), t["wMu"], t["bMu"], t["wA"], t["bA"], t["x"], self.dense).sum()
        loss.backward()
        grads = {n: encode(t[n].grad) for n in NAMES[:-1]}
        for n in NAMES[:-1]:
            t[n].grad = None
        return loss.item(), grads


def answer(obj):
    print(json.dumps(obj), flush=True)


def serve(args):
    torch.set_num_threads(args.threads)
    dense = DENSE[args.dense]
    answer({"torch": torch.__version__, "threads": torch.get_num_threads(), "dense": PATH[args.dense],
            "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}})
    problem = None
    for line in sys.stdin:
        words = line.split(maxsplit=1)
        if not words:
            continue
        try:
            if words[0] == "load":
                problem = Problem({n: decode(e) for n, e in json.loads(words[1]).items()}, dense)
                value, grads = problem.value_and_grads()
                answer({"loss": value, "grads": grads})
            elif words[0] in ("alone", "logits") and len(words) == 2 and words[1].strip().isdigit():
                if problem is None:
                    raise ValueError("no inputs yet: send 'load {json}' first")
                from_logits = words[0] == "logits"
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                n = int(words[1])
                med, mn, _ = median_ms(lambda: problem.call(from_logits), 2, n)
                f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                answer({"median_ms": med, "min_ms": mn, "others_cpu": median_ms.others,
                        "page_faults_per_call": (f1 - f0) / (n + 2)})
            else:
                raise ValueError(f"expected 'load {{json}}' or 'alone|logits N', got {line[:60].strip()!r}")
        except (ValueError, KeyError, RuntimeError) as e:
            answer({"error": str(e)})
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", action="store_true", required=True,
                    help="answer requests on stdin (the only mode; see the module docstring)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dense", choices=sorted(DENSE), default="conv1x1",
                    help="contractions as oneDNN 1x1 convolutions (default) or torch.mm (reference BLAS)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return serve(args)
    # As train_step.py --serve: glibc told to keep freed memory, so large tensors are not mmap'd and
    # re-faulted on every call; set in the environment of a fresh process, where malloc reads it.
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--serve", "--threads", str(args.threads), "--dense", args.dense]
    return subprocess.run(cmd, env=worker_env("glibc-reuse")).returncode


if __name__ == "__main__":
    sys.exit(main())
