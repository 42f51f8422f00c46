"""Reference solutions of the lesson exercises, for tests and instructors.

Every exercise cell of a lesson is tagged ``exercise`` and names its question in the cell
metadata (``{"mcviz": {"question": "01.conv_macs"}}``); ``SOLUTIONS`` maps each question to
the code that replaces the starter. The tests run every lesson with these solutions and require
every ``mcv.check`` to pass.

Instructors can write a solved copy of a lesson::

    python tests/lesson_solutions.py lessons/01_measuring_a_model.ipynb solved.ipynb
"""

from __future__ import annotations

import sys

import nbformat

EXERCISE_TAG = "exercise"

SOLUTIONS = {
    # lesson 00
    "00.fc_inputs": """\
def fc_inputs(height, width):
    return 32 * ((height - 2) // 2) * ((width - 2) // 2)""",
    "00.random_prune": """\
def random_prune(model, fraction, seed):
    pruned = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in pruned.modules():
            if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
                n = layer.weight.numel()
                order = torch.randperm(n, generator=generator)
                layer.weight.view(-1)[order[: round(fraction * n)]] = 0
    return pruned""",
    "00.agreement": """\
def agreement(model_a, model_b, images):
    with torch.no_grad():
        same = model_a(images).argmax(dim=1) == model_b(images).argmax(dim=1)
    return same.float().mean().item()""",
    # lesson 01
    "01.channels_for_budget": """\
def channels_for_budget(budget, height, width):
    pooled = ((height - 2) // 2) * ((width - 2) // 2)
    per_channel = 3 * 3 + 1 + pooled * 10  # conv weights and bias, dense weights
    return max(0, (budget - 10) // per_channel)  # 10: the dense layer's biases""",
    "01.conv_macs": """\
def conv_macs(conv, height, width):
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    h_out = (height + 2 * ph - kh) // sh + 1
    w_out = (width + 2 * pw - kw) // sw + 1
    return conv.out_channels * h_out * w_out * conv.in_channels * kh * kw""",
    "01.lenet300_macs": "lenet300_macs = 784 * 300 + 300 * 100 + 100 * 10",
    "01.fair_latency": 'fair_latency = "b"',
    # lesson 02
    "02.scale_zero_point": """\
def scale_zero_point(x, bits, symmetric):
    qmin, qmax = mcv.quantize.qrange(bits, symmetric=symmetric)
    lo, hi = min(x.min().item(), 0.0), max(x.max().item(), 0.0)
    if symmetric:
        return max(-lo, hi) / qmax, 0
    scale = (hi - lo) / (qmax - qmin)
    return scale, min(max(round(-lo / scale), qmin), qmax)""",
    "02.fake_quantize": """\
def fake_quant(x, bits, symmetric):
    qmin, qmax = mcv.quantize.qrange(bits, symmetric=symmetric)
    scale, zero_point = mcv.quantize.qparams(x, bits, symmetric=symmetric)
    q = torch.clamp(torch.round(x / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale""",
    "02.int8_size": """\
def int8_size(model):
    total = 0
    for layer in model.modules():
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
            total += layer.weight.numel()  # one byte per code
            total += 4 * layer.weight.shape[0]  # an fp32 scale per output channel, no zero point
            total += 4 * layer.bias.numel() if layer.bias is not None else 0  # fp32 bias
    return total""",
    # lesson 03
    "03.ste_fake_quantize": """\
def ste_fake_quant(w, bits):
    qmin, qmax = mcv.quantize.qrange(bits, symmetric=True)
    scale = w.detach().abs().max() / qmax
    rounded = torch.clamp(torch.round(w.detach() / scale), qmin, qmax) * scale
    return w + (rounded - w).detach()""",
    "03.kmeans_bits": """\
def kmeans_bits(layer, budget_bytes):
    def size(bits):
        index_bytes = math.ceil(layer.weight.numel() * bits / 8)
        bias_bytes = 4 * layer.bias.numel() if layer.bias is not None else 0
        return index_bytes + 4 * 2**bits + bias_bytes
    fitting = [bits for bits in range(2, 9) if size(bits) <= budget_bytes]
    return max(fitting) if fitting else None""",
    # lesson 04
    "04.global_mask": """\
def global_mask(model, sparsity):
    layers = {n: m.weight.detach() for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    scores = torch.cat([w.abs().flatten() for w in layers.values()])
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    keep[torch.argsort(scores, stable=True)[: round(sparsity * scores.numel())]] = False
    parts = torch.split(keep, [w.numel() for w in layers.values()])
    return {n: p.reshape(w.shape) for (n, w), p in zip(layers.items(), parts, strict=True)}""",
    "04.allocate": """\
def choose_sparsities(scan, budget_sparsity):
    import itertools

    layers = list(dict.fromkeys(scan["layer"]))
    options, weights = {}, {}
    for n in layers:
        rows = scan[scan["layer"] == n]
        options[n] = [(0.0, 0.0)] + list(zip(rows["sparsity"], rows["drop"], strict=True))
        weights[n] = int(rows["weights"].iloc[0])
    total, best = sum(weights.values()), None
    for combo in itertools.product(*(options[n] for n in layers)):
        zeros = sum(round(s * weights[n]) for n, (s, _) in zip(layers, combo, strict=True))
        drop = sum(d for _, d in combo)
        if zeros >= budget_sparsity * total and (best is None or drop < best[0]):
            best = (drop, {n: float(s) for n, (s, _) in zip(layers, combo, strict=True)})
    return best[1]""",
    # lesson 05
    "05.vgg_pruned_macs": """\
def vgg_pruned_macs(input_shape, width, sparsity):
    channels, h, w = input_shape
    macs = 0
    for out in (width, 2 * width, 2 * width):
        kept = out - int(sparsity * out)  # floor, for a positive number
        macs += kept * h * w * channels * 3 * 3  # padding 1: the output map is h x w
        channels, h, w = kept, h // 2, w // 2  # max-pool 2
    return macs + channels * h * w * 10  # the Linear layer""",
    "05.pruned_macs": """\
def pruned_macs(model, input_shape, k):
    c, h, w = input_shape
    conv, fc = model.conv1, model.fc1
    kh, kw = conv.kernel_size
    h1, w1 = h - kh + 1, w - kw + 1  # no padding, stride 1
    filters = conv.out_channels - k
    return filters * h1 * w1 * c * kh * kw + filters * (h1 // 2) * (w1 // 2) * fc.out_features""",
    # lesson 06
    "06.kd_loss": """\
def kd_loss(student_logits, teacher_logits, labels, T, alpha):
    log_p_student = F.log_softmax(student_logits / T, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / T, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1).mean()
    return alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(student_logits, labels)""",
    "06.soft_entropy": """\
def soft_entropy(model, x, T):
    with torch.no_grad():
        p = F.softmax(model(x.unsqueeze(0)) / T, dim=1)[0]
    return float(torch.special.entr(p).sum())  # -p log p, and 0 where p = 0""",
    # lesson 07
    "07.pareto": """\
def pareto_labels(df, cost, metric):
    rows = df.sort_values([cost, metric], ascending=[True, False], kind="stable")
    front, best = set(), float("-inf")
    for label, value in zip(rows["label"], rows[metric], strict=True):
        if value > best:  # beats every cheaper (or equally cheap, earlier) row
            front.add(label)
            best = value
    return front""",
    # lesson 08
    "08.huffman_length": """\
def huffman_average_length(counts):
    heap = [(c, s, [s]) for s, c in enumerate(counts) if c]
    lengths = [0] * len(counts)
    if len(heap) == 1:
        return 1.0
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, k1, g1 = heapq.heappop(heap)
        c2, k2, g2 = heapq.heappop(heap)
        for s in g1 + g2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, min(k1, k2), g1 + g2))
    return sum(c * n for c, n in zip(counts, lengths)) / sum(counts)""",
    "08.relative_indices": """\
def relative_entries(mask, index_bits):
    filler, entries, previous = 2**index_bits - 1, [], -1
    for position in np.flatnonzero(mask):
        gap = int(position) - previous - 1
        entries += [filler] * (gap // filler) + [gap % filler]
        previous = int(position)
    return entries""",
    # lesson 09
    "09.mcnemar": """\
def mcnemar_p(correct_a, correct_b):
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**n)""",
    "09.concentration": """\
def top_share(attribution, top):
    a = attribution.abs()
    k = math.ceil(top * a.shape[1])
    return a.sort(dim=1, descending=True).values[:, :k].sum(1) / a.sum(1)""",
    # lesson 10
    "10.group_scale": """\
def group_scales(w, bits, group_size):
    qmax = 2 ** (bits - 1) - 1
    return w.abs().reshape(w.shape[0], -1, group_size).amax(dim=2) / qmax""",
    "10.gptq_column": """\
def gptq_update(W, Hinv, j, q):
    W = W.clone()
    err = (W[:, j] - q) / Hinv[j, j]
    W[:, j + 1 :] -= err[:, None] * Hinv[j, j + 1 :][None, :]
    W[:, j] = q
    return W""",
    # lesson 11
    "11.two_four_bytes": """\
def two_four_bytes(out_features, in_features):
    kept = out_features * in_features // 2
    return 4 * kept + math.ceil(2 * kept / 8) + 4 * out_features""",
    "11.nn_agreement": """\
def nn_agreement(a, b):
    def neighbours(e):
        e = torch.nn.functional.normalize(e, dim=1)
        sim = e @ e.T
        sim.fill_diagonal_(float("-inf"))
        return sim.argmax(dim=1)

    return float((neighbours(a) == neighbours(b)).float().mean())""",
    "07.priced": """\
def priced(df, cost):
    error, c = (1 - df.accuracy).tolist(), df[cost].tolist()
    picked = set()
    for i in range(len(df)):
        low, high, ok = 0.0, float("inf"), True
        for j in range(len(df)):
            if c[j] > c[i]:  # a costlier row: lambda must be large enough for row i to win
                low = max(low, (error[i] - error[j]) / (c[j] - c[i]))
            elif c[j] < c[i]:  # a cheaper row: lambda must be small enough
                high = min(high, (error[j] - error[i]) / (c[i] - c[j]))
            elif error[i] > error[j]:  # as costly and less accurate: never picked
                ok = False
        if ok and low <= high + 1e-12:
            picked.add(df.label.iloc[i])
    return picked""",
    # lesson 12
    "12.fixed_point": """\
def fixed_point(M):
    mantissa, exponent = math.frexp(M)
    m0 = round(mantissa * 2**31)
    if m0 == 2**31:
        m0, exponent = m0 // 2, exponent + 1
    return m0, 31 - exponent""",
    "12.integer_linear": """\
def int_linear(x_q, x_scale, x_zero_point, w_q, w_scale, bias, out_scale, out_zero_point):
    x, w = x_q.to(torch.int64), w_q.to(torch.int64)
    acc = (x - x_zero_point) @ w.T
    if bias is not None:
        acc = acc + torch.round(bias.double() / (x_scale * w_scale)).to(torch.int64)
    pairs = [mcv.quantize.fixed_point_multiplier(m) for m in (x_scale * w_scale / out_scale).tolist()]
    m0 = torch.tensor([p[0] for p in pairs])
    shift = torch.tensor([p[1] for p in pairs])
    codes = ((acc * m0 + (1 << (shift - 1))) >> shift) + out_zero_point
    return torch.clamp(codes, 0, 255).to(torch.uint8)""",
    "12.fold_bn": """\
def fold(conv, bn):
    new = copy.deepcopy(conv)
    factor = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        new.weight.mul_(factor[:, None, None, None])
        new.bias = torch.nn.Parameter((bias - bn.running_mean) * factor + bn.bias.detach())
    return new""",
}


def exercise_question(cell) -> str | None:
    """Returns the question an exercise cell answers, or None for any other cell."""
    if cell.cell_type != "code" or EXERCISE_TAG not in cell.metadata.get("tags", []):
        return None
    return cell.metadata.get("mcviz", {}).get("question")


def solve(nb):
    """Returns a copy of notebook ``nb`` with every exercise cell replaced by its solution."""
    out = nbformat.reads(nbformat.writes(nb), as_version=4)
    for cell in out.cells:
        name = exercise_question(cell)
        if name is not None:
            if name not in SOLUTIONS:
                raise KeyError(f"no solution for exercise {name!r}")
            cell.source = SOLUTIONS[name]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/lesson_solutions.py LESSON.ipynb SOLVED.ipynb", file=sys.stderr)
        return 2
    nbformat.write(solve(nbformat.read(argv[0], as_version=4)), argv[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
