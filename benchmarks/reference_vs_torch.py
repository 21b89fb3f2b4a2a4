"""Time the NumPy reference against PyTorch autograd on the same work, in one run.

    python benchmarks/reference_vs_torch.py [--threads 1] [--repeats 30]

Cases (float64 on both sides, identical inputs):

- MLP: one training step, N=256, 784-256-256-10, ReLU, softmax cross-entropy, plain SGD.
  Reference: mlp_forward + softmax_cross_entropy(_backward) + mlp_backward + sgd per array.
  PyTorch:   the same network with autograd, loss.backward() and torch.optim.SGD.step().
- RNN: forward and backward of a tanh RNN, N=32, T=50, D=H=128, upstream gradient on every
  hidden state. Reference: rnn_forward + rnn_backward. PyTorch: a Python loop of
  tanh(x_t @ Wx + h @ Wh + b) and autograd, with gradients for x, h0, Wx, Wh and b.

Both sides use the same number of threads. torch.set_num_threads sets PyTorch's; NumPy's BLAS
is limited with threadpoolctl when it is installed, otherwise through OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS and MKL_NUM_THREADS, which this script sets before NumPy is first imported
(they only take effect at that import). Each case is warmed up, then timed `repeats` times
alternating the two sides; the table shows medians and the NumPy/PyTorch ratio next to its
target. Before timing, the script checks that both sides compute the same numbers.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Run as a script from anywhere: make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
MLP_TARGET = 1.3
RNN_TARGET = 2.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for both sides (default 1)")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per side (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per side first (default 5)")
    return parser.parse_args()


def median_times(first, second, repeats, warmup):
    """Median wall-clock seconds of two callables, timed alternately so drift hits both."""
    for _ in range(warmup):
        first()
        second()
    first_times, second_times = [], []
    for _ in range(repeats):
        for function, times in ((first, first_times), (second, second_times)):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
    return statistics.median(first_times), statistics.median(second_times)


def max_relative_difference(ours, theirs):
    """Largest |a - b| / max(|b|) over pairs of arrays, theirs being torch tensors."""
    return max(
        float(abs(a - b.detach().numpy()).max() / max(abs(b.detach().numpy()).max(), 1e-300))
        for a, b in zip(ours, theirs)
    )


def mlp_case(np, torch, rng):
    from solutions.backward_pass import mlp_backward, softmax_cross_entropy_backward
    from solutions.forward_pass import mlp_forward, softmax_cross_entropy
    from solutions.optimizers import sgd

    sizes, N, learning_rate = (784, 256, 256, 10), 256, 1e-2
    X = rng.standard_normal((N, sizes[0]))
    y = rng.integers(0, sizes[-1], size=N)
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{layer}"] = rng.normal(0.0, (2.0 / fan_in) ** 0.5, (fan_in, fan_out))
        params[f"b{layer}"] = rng.normal(0.0, 0.1, fan_out)
    config = {"lr": learning_rate}

    # Each side keeps training its own copy of the weights from call to call.
    def reference_step():
        scores, caches = mlp_forward(X, params, "relu")
        loss = softmax_cross_entropy(scores, y)
        grads = mlp_backward(softmax_cross_entropy_backward(scores, y), caches)
        params.update({name: sgd(params[name], grads[name], config)[0] for name in params})
        return loss

    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    params_t = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    optimizer = torch.optim.SGD(params_t.values(), lr=learning_rate)
    num_layers = len(sizes) - 1

    def torch_step():
        optimizer.zero_grad(set_to_none=True)
        h = X_t
        for layer in range(1, num_layers + 1):
            h = h @ params_t[f"W{layer}"] + params_t[f"b{layer}"]
            if layer < num_layers:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, y_t)
        loss.backward()
        optimizer.step()
        return loss

    initial = dict(params)
    reference_step()
    torch_step()
    difference = max_relative_difference(
        [params[name] - initial[name] for name in params],
        [params_t[name] - torch.from_numpy(initial[name]) for name in params],
    )
    return reference_step, torch_step, difference


def rnn_case(np, torch, rng):
    from solutions.bptt import rnn_backward, rnn_forward

    N, T, D, H = 32, 50, 128, 128
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    Wx = rng.normal(0.0, D**-0.5, (D, H))
    Wh = rng.normal(0.0, H**-0.5, (H, H))
    b = rng.normal(0.0, 0.1, H)
    dh = rng.standard_normal((N, T, H))

    def reference_step():
        h, cache = rnn_forward(x, h0, Wx, Wh, b)
        return rnn_backward(dh, cache)

    inputs_t = [torch.tensor(value, requires_grad=True) for value in (x, h0, Wx, Wh, b)]
    dh_t = torch.from_numpy(dh)

    def torch_step():
        x_t, h0_t, Wx_t, Wh_t, b_t = inputs_t
        hidden, states = h0_t, []
        for t in range(T):
            hidden = torch.tanh(x_t[:, t] @ Wx_t + hidden @ Wh_t + b_t)
            states.append(hidden)
        return torch.autograd.grad(torch.stack(states, dim=1), inputs_t, grad_outputs=dh_t)

    difference = max_relative_difference(reference_step(), torch_step())
    return reference_step, torch_step, difference


def main():
    args = parse_args()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
        for variable in BLAS_THREAD_VARIABLES:
            os.environ[variable] = str(args.threads)
    # Imported only now: the BLAS thread variables above must be set before NumPy loads.
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if threadpool_limits is not None:
        threadpool_limits(limits=args.threads)
        numpy_threads = f"{args.threads} (threadpoolctl)"
    else:
        numpy_threads = ", ".join(f"{v}={os.environ[v]}" for v in BLAS_THREAD_VARIABLES)
    print(f"NumPy {np.__version__}, PyTorch {torch.__version__}, float64")
    print(f"threads: PyTorch {torch.get_num_threads()}; NumPy BLAS {numpy_threads}")
    print(f"median of {args.repeats} runs after {args.warmup} warm-up runs per side\n")

    rng = np.random.default_rng(0)
    cases = [
        ("MLP train step N=256 784-256-256-10", mlp_case, MLP_TARGET),
        ("RNN fwd+bwd N=32 T=50 D=H=128", rnn_case, RNN_TARGET),
    ]
    header = f"{'case':<38}{'NumPy ms':>10}{'PyTorch ms':>12}{'ratio':>8}{'target':>10}  {'max rel diff':>12}"
    print(header)
    print("-" * len(header))
    for name, make_case, target in cases:
        reference_step, torch_step, difference = make_case(np, torch, rng)
        reference_time, torch_time = median_times(reference_step, torch_step, args.repeats, args.warmup)
        ratio = reference_time / torch_time
        verdict = "met" if ratio <= target else "MISSED"
        print(
            f"{name:<38}{reference_time * 1e3:>10.2f}{torch_time * 1e3:>12.2f}{ratio:>8.2f}"
            f"{'<= ' + str(target):>10}  {difference:>12.1e}  {verdict}"
        )


if __name__ == "__main__":
    main()
